// Package importer is the block import API that `strata migrate backfill` writes
// through. A Prometheus TSDB block (meta.json, index, chunks/…, tombstones) is sent file
// by file, in parts that each fit a signed request (--auth.max-body-bytes):
//
//	PUT  /workspaces/{workspaceId}/api/v1/import/blocks/{ulid}/files/{file...}?offset=N  a part
//	GET  /workspaces/{workspaceId}/api/v1/import/blocks/{ulid}                           what is staged
//	POST /workspaces/{workspaceId}/api/v1/import/blocks/{ulid}                           import it
//
// The parts are staged under the data directory; a client that was interrupted asks
// what is staged and goes on from there. On POST the block is checked as a whole before
// it counts (blocks.Check reads every sample), refused when all of it is outside the
// workspace's retention, and uploaded to the workspace's place in the bucket, where the
// store-gateway and the compactor find it like any other block. A block the workspace
// already has (by its ULID) is not stored twice.
package importer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/blocks"
)

// Config is the import API's configuration.
type Config struct {
	// MaxBlockBytes bounds one block's tar stream.
	MaxBlockBytes int64 `yaml:"max_block_bytes"`
	// CreationGracePeriod: a block reaching further into the future than this is refused.
	CreationGracePeriod time.Duration `yaml:"creation_grace_period"`
	// StagedTTL: staged parts of a block not touched for this long are removed.
	StagedTTL time.Duration `yaml:"staged_ttl"`
}

// RegisterFlags registers the flags under "import.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Int64Var(&c.MaxBlockBytes, "import.max-block-bytes", 16<<30, "Largest block (all its files) the block import API (strata migrate backfill) takes, in bytes; a part that would go beyond is refused with 413.")
	f.DurationVar(&c.StagedTTL, "import.staged-ttl", 24*time.Hour, "Staged parts of an import not continued for this long are removed.")
	f.DurationVar(&c.CreationGracePeriod, "import.creation-grace-period", 10*time.Minute, "How far into the future an imported block may reach.")
}

// Workspaces says whether a workspace takes data and how long it keeps it (zero: forever).
type Workspaces interface {
	Retention(ctx context.Context, id string) (time.Duration, bool, error)
}

// Importer serves the block import API.
type Importer struct {
	cfg    Config
	dir    string // staged blocks: dir/<workspace>/<ulid>/
	bkt    objstore.Bucket
	ws     Workspaces
	now    func() time.Time
	logger *slog.Logger

	mu     sync.Mutex
	locked map[string]*sync.Mutex // by workspace/ulid: one request at a time per block

	blocksTotal  *prometheus.CounterVec
	samplesTotal prometheus.Counter
}

// New returns an importer that stages blocks under dir.
func New(cfg Config, dir string, bkt objstore.Bucket, ws Workspaces, logger *slog.Logger, reg prometheus.Registerer) (*Importer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the import directory: %w", err)
	}
	f := promauto.With(reg)
	i := &Importer{
		cfg: cfg, dir: dir, bkt: bkt, ws: ws, now: time.Now, logger: logger, locked: map[string]*sync.Mutex{},
		blocksTotal: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_import_blocks_total",
			Help: "Blocks the block import API was asked to import, by outcome (imported, exists, refused, failed).",
		}, []string{"outcome"}),
		samplesTotal: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_import_samples_total",
			Help: "Samples of the blocks imported.",
		}),
	}
	i.removeStale()
	return i, nil
}

// Routes are the API's routes: name, method and pattern, and the handler.
func (i *Importer) Routes() []Route {
	const base = "/workspaces/{workspaceId}/api/v1/import/blocks/{ulid}"
	return []Route{
		{"ImportBlockPart", http.MethodPut, base + "/files/{file...}", http.HandlerFunc(i.putPart)},
		{"DescribeImportBlock", http.MethodGet, base, http.HandlerFunc(i.status)},
		{"ImportBlock", http.MethodPost, base, http.HandlerFunc(i.complete)},
	}
}

// Mux serves the routes as they are, without authentication: for tests, and for tools
// that put their own in front.
func (i *Importer) Mux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, r := range i.Routes() {
		mux.Handle(r.Method+" "+r.Pattern, r.Handler)
	}
	return mux
}

// Route is one of the API's routes.
type Route struct {
	Name, Method, Pattern string
	Handler               http.Handler
}

// OutOfRetention is in the message of a block refused for being older than the
// workspace keeps anything: a client skips it rather than failing.
const OutOfRetention = "before the workspace's retention"

// Result is the answer to an import.
type Result struct {
	ULID    string `json:"ulid"`
	Status  string `json:"status"` // "imported" or "exists"
	MinTime int64  `json:"minTime"`
	MaxTime int64  `json:"maxTime"`
	Series  uint64 `json:"series"`
	Samples uint64 `json:"samples"`
}

// Status is what the workspace holds of a block.
type Status struct {
	ULID string `json:"ulid"`
	// Status is "exists" (imported), "staged" (parts received) or "none".
	Status string           `json:"status"`
	Files  map[string]int64 `json:"files,omitempty"` // staged bytes by file
}

func badRequest(format string, args ...any) error {
	return &awsapi.Error{Status: http.StatusBadRequest, Type: awsapi.ValidationException, Message: fmt.Sprintf(format, args...), Reason: awsapi.ReasonOther}
}

func (i *Importer) fail(w http.ResponseWriter, ws string, err error) {
	e := awsapi.As(err)
	if e == nil {
		i.logger.Error("importing a block", "workspace", ws, "err", err)
		e = awsapi.Internal()
	}
	awsapi.WriteError(w, e)
}

// block resolves the request's workspace and block, and locks the block until unlock.
func (i *Importer) block(r *http.Request) (ws string, id ulid.ULID, staged string, unlock func(), err error) {
	ws = r.PathValue("workspaceId")
	id, perr := ulid.ParseStrict(r.PathValue("ulid"))
	if perr != nil {
		return "", id, "", nil, badRequest("%q is not a block ULID", r.PathValue("ulid"))
	}
	if _, ok, err := i.ws.Retention(r.Context(), ws); err != nil {
		return "", id, "", nil, fmt.Errorf("looking up workspace %s: %w", ws, err)
	} else if !ok {
		return "", id, "", nil, awsapi.NotFound("workspace", ws, "Workspace %s not found", ws)
	}
	key := ws + "/" + id.String()
	i.mu.Lock()
	m := i.locked[key]
	if m == nil {
		m = &sync.Mutex{}
		i.locked[key] = m
	}
	i.mu.Unlock()
	m.Lock()
	return ws, id, filepath.Join(i.dir, ws, id.String()), m.Unlock, nil
}

// putPart appends one part to a staged file, at ?offset=, which must be the bytes staged
// so far (409 otherwise, with the staged size: the client goes on from there).
func (i *Importer) putPart(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("offset") == "0" {
		i.removeStale() // a new file of an import: a good time to drop abandoned ones
	}
	ws, id, staged, unlock, err := i.block(r)
	if err != nil {
		i.fail(w, ws, err)
		return
	}
	defer unlock()
	size, err := i.writePart(r, id, staged)
	if err != nil {
		i.fail(w, ws, err)
		return
	}
	awsapi.WriteJSON(w, http.StatusOK, map[string]int64{"size": size})
}

func (i *Importer) writePart(r *http.Request, id ulid.ULID, staged string) (int64, error) {
	name := r.PathValue("file")
	if !blockFile.MatchString(name) {
		return 0, badRequest("%q is not a file of a block (meta.json, index, tombstones, chunks/NNNNNN)", name)
	}
	offset, err := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if err != nil || offset < 0 {
		return 0, badRequest("offset must be the bytes of %s sent so far", name)
	}
	if err := os.MkdirAll(filepath.Join(staged, "chunks"), 0o700); err != nil {
		return 0, err
	}
	total, err := dirSize(staged)
	if err != nil {
		return 0, err
	}
	path := filepath.Join(staged, filepath.FromSlash(name))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if info.Size() != offset {
		return 0, &awsapi.Error{Status: http.StatusConflict, Type: awsapi.ConflictException, Reason: awsapi.ReasonOther,
			Message: fmt.Sprintf("%s of block %s has %d bytes staged, not %d: send from %d", name, id, info.Size(), offset, info.Size())}
	}
	limit := i.cfg.MaxBlockBytes - total
	if r.ContentLength > limit {
		return 0, tooLarge(i.cfg.MaxBlockBytes)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(f, io.LimitReader(r.Body, limit+1))
	if err == nil && n > limit {
		err = tooLarge(i.cfg.MaxBlockBytes)
	}
	if err != nil {
		_ = f.Truncate(offset) // the part counts whole or not at all
		return 0, err
	}
	return offset + n, f.Sync()
}

func tooLarge(limit int64) error {
	return &awsapi.Error{Status: http.StatusRequestEntityTooLarge, Type: awsapi.ValidationException, Reason: awsapi.ReasonOther,
		Message: fmt.Sprintf("the block is larger than the import limit of %d bytes (--import.max-block-bytes)", limit)}
}

// status answers what the workspace holds of the block.
func (i *Importer) status(w http.ResponseWriter, r *http.Request) {
	ws, id, staged, unlock, err := i.block(r)
	if err != nil {
		i.fail(w, ws, err)
		return
	}
	defer unlock()
	st := Status{ULID: id.String(), Status: "none"}
	exists, err := i.bkt.Exists(r.Context(), blocks.Dir(ws, id)+blocks.MetaFilename)
	if err != nil {
		i.fail(w, ws, fmt.Errorf("looking for block %s in the bucket: %w", id, err))
		return
	}
	if exists {
		st.Status = "exists"
	} else if files, err := stagedFiles(staged); err == nil && len(files) > 0 {
		st.Status, st.Files = "staged", files
	}
	awsapi.WriteJSON(w, http.StatusOK, st)
}

// complete imports the staged block.
func (i *Importer) complete(w http.ResponseWriter, r *http.Request) {
	ws, id, staged, unlock, err := i.block(r)
	if err != nil {
		i.fail(w, ws, err)
		return
	}
	defer unlock()
	res, err := i.importStaged(r.Context(), ws, id, staged)
	if err != nil {
		outcome := "refused"
		if e := awsapi.As(err); e == nil || e.Status >= 500 {
			outcome = "failed"
		}
		i.blocksTotal.WithLabelValues(outcome).Inc()
		i.fail(w, ws, err)
		return
	}
	i.blocksTotal.WithLabelValues(res.Status).Inc()
	if res.Status == "imported" {
		i.samplesTotal.Add(float64(res.Samples))
		i.logger.Info("block imported", "workspace", ws, "block", res.ULID, "series", res.Series, "samples", res.Samples)
	}
	awsapi.WriteJSON(w, http.StatusOK, res)
}

func (i *Importer) importStaged(ctx context.Context, ws string, id ulid.ULID, staged string) (*Result, error) {
	retention, _, err := i.ws.Retention(ctx, ws)
	if err != nil {
		return nil, err
	}
	exists, err := i.bkt.Exists(ctx, blocks.Dir(ws, id)+blocks.MetaFilename)
	if err != nil {
		return nil, fmt.Errorf("looking for block %s in the bucket: %w", id, err)
	}
	if exists {
		_ = os.RemoveAll(staged)
		return &Result{ULID: id.String(), Status: "exists"}, nil
	}
	meta, err := blocks.ReadLocalMeta(staged)
	if err != nil {
		return nil, badRequest("block %s: its meta.json is not staged or not valid: %v", id, err)
	}
	if meta.ULID != id {
		return nil, badRequest("the meta.json staged as block %s is block %s's", id, meta.ULID)
	}
	// From here on the staged block is done with, whatever the outcome: a block refused
	// is sent again from scratch.
	defer os.RemoveAll(staged)
	res := &Result{ULID: id.String(), MinTime: meta.MinTime, MaxTime: meta.MaxTime, Series: meta.Stats.NumSeries, Samples: meta.Stats.NumSamples}
	now := i.now()
	if retention > 0 && meta.MaxTime <= now.Add(-retention).UnixMilli() {
		return nil, badRequest("block %s ends at %s, "+OutOfRetention+" of %s: nothing of it would be kept",
			id, time.UnixMilli(meta.MaxTime).UTC().Format(time.RFC3339), retention)
	}
	if meta.MaxTime > now.Add(i.cfg.CreationGracePeriod).UnixMilli()+1 {
		return nil, badRequest("block %s reaches %s, further into the future than %s (--import.creation-grace-period)",
			id, time.UnixMilli(meta.MaxTime).UTC().Format(time.RFC3339), i.cfg.CreationGracePeriod)
	}
	// blocks.Check and Upload want the directory named after the block.
	dir := filepath.Join(filepath.Dir(staged), id.String()+".checking")
	if err := os.Rename(staged, dir); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	named := filepath.Join(dir, id.String())
	if err := os.Mkdir(named, 0o700); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Name() != id.String() {
			if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(named, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	if err := blocks.Check(ctx, named); err != nil {
		return nil, badRequest("%v", err)
	}
	// No ingester holds it: the compactor may merge its window at once.
	if err := blocks.MarkImported(named); err != nil {
		return nil, fmt.Errorf("marking block %s as imported: %w", id, err)
	}
	if _, err := blocks.Upload(ctx, i.bkt, ws, named); err != nil {
		return nil, fmt.Errorf("uploading block %s: %w", id, err)
	}
	res.Status = "imported"
	return res, nil
}

// blockFile is what a block holds: meta.json, index, tombstones, chunks/000001….
var blockFile = regexp.MustCompile(`^(meta\.json|index|tombstones|chunks/[0-9]{6})$`)

// BlockFiles lists the files of the block in dir that the import API takes, meta.json
// last (the server reads it to import the block), with their sizes.
func BlockFiles(dir string) ([]string, map[string]int64, error) {
	sizes, err := stagedFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for n := range sizes {
		if n != blocks.MetaFilename {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if _, ok := sizes[blocks.MetaFilename]; ok {
		names = append(names, blocks.MetaFilename)
	}
	return names, sizes, nil
}

// stagedFiles returns the block files in dir by name (slash-separated) with their sizes.
func stagedFiles(dir string) (map[string]int64, error) {
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); blockFile.MatchString(rel) {
			info, err := d.Info()
			if err != nil {
				return err
			}
			out[rel] = info.Size()
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	return out, err
}

func dirSize(dir string) (int64, error) {
	files, err := stagedFiles(dir)
	var n int64
	for _, s := range files {
		n += s
	}
	return n, err
}

// removeStale removes staged blocks not touched within StagedTTL, and what a process
// stopped in the middle of checking left.
func (i *Importer) removeStale() {
	wss, _ := os.ReadDir(i.dir)
	for _, ws := range wss {
		staged, _ := os.ReadDir(filepath.Join(i.dir, ws.Name()))
		for _, b := range staged {
			p := filepath.Join(i.dir, ws.Name(), b.Name())
			if strings.HasSuffix(b.Name(), ".checking") || i.now().Sub(lastTouched(p)) > i.cfg.StagedTTL {
				_ = os.RemoveAll(p)
			}
		}
	}
}

// lastTouched is when anything under dir was last written.
func lastTouched(dir string) time.Time {
	var last time.Time
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil {
			if info, err := d.Info(); err == nil && info.ModTime().After(last) {
				last = info.ModTime()
			}
		}
		return nil
	})
	return last
}
