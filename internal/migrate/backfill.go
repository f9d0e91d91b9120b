package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/stratametrics/strata/internal/blocks"
	"github.com/stratametrics/strata/internal/importer"
	"github.com/stratametrics/strata/internal/sigv4proxy"
)

const backfillUsage = `Usage: strata migrate backfill --from DIR --workspace-endpoint URL [flags]
       strata migrate backfill --remote-read URL --start TIME --workspace-endpoint URL [flags]

Moves the history of a Prometheus data directory (or of a snapshot of one) into a
workspace: its blocks as they are, and its head (the WAL) written as one more block;
with --start/--end only that window (blocks across a bound are cut to it). Or, with
--remote-read, a running Prometheus' remote-read API, a window (--remote-read-window) at
a time, each window a block.
Blocks, not samples, cross the wire, file by file in parts (--part-size) through the
workspace's block import API (IAM action aps:ImportBlocks); the server checks each block
as a whole before it counts. A block entirely older than the workspace's retention is
skipped with a message; a block the server refuses (a corrupt one) is named and the rest
go on. With --verify, each block's series and samples by metric are then compared with
what the workspace answers for its window. Interrupted, the same command goes on where it stopped: blocks the workspace has
are not sent again, a block half sent continues from the parts the server holds, and the
head block is kept in --work-dir. A data directory a running Prometheus holds (its lock
file) is refused: take a snapshot and backfill from it. Requests are signed with the
standard AWS credential chain. Exits 1 when a block was refused or a request failed.

Flags:
`

// BackfillConfig is what `strata migrate backfill` moves where.
type BackfillConfig struct {
	From string
	// RemoteRead, instead of From, is a Prometheus' remote-read API (…/api/v1/read), read
	// RemoteReadWindow at a time from Start (required) to End (default: now).
	RemoteRead       string
	RemoteReadWindow time.Duration
	RemoteReadClient *http.Client
	// WorkDir keeps the head written as a block between runs.
	WorkDir string
	Client  *importer.Client
	// Start and End bound what is moved (zero: unbounded): blocks outside are passed
	// over, blocks across a bound are cut to it (written anew under WorkDir).
	Start, End time.Time
	// Verify compares, once everything is sent, each block's series and samples by
	// metric with what the workspace answers for the block's window (VerifyClient signs
	// the queries), waiting up to VerifyTimeout for the store-gateway to find the blocks.
	Verify        bool
	VerifyClient  *http.Client
	VerifyTimeout time.Duration
	// Out gets the progress: a line per block, or a bar redrawn in place when TTY.
	Out io.Writer
	TTY bool
}

// BackfillReport is what a backfill did.
type BackfillReport struct {
	Imported, Existed, Skipped, Refused int
	// Verified and Mismatched count the blocks --verify found alike and different.
	Verified, Mismatched int
	Samples              uint64 // of the blocks imported
	Bytes                int64  // sent
	Took                 time.Duration
}

// errInUse says a running Prometheus holds the data directory.
var errInUse = errors.New("in use")

// checkNotInUse fails when a running Prometheus holds dir: its lock file is locked
// (--storage.tsdb.use-lockfile, the default of upstream's builds), or a process has a
// file of it open (Linux' /proc; Debian's build runs without a lock file).
func checkNotInUse(dir string) error {
	holder := ""
	if f, err := os.Open(filepath.Join(dir, "lock")); err == nil {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
			holder = "it holds " + filepath.Join(dir, "lock")
		} else if err == nil {
			_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
		f.Close()
	}
	if holder == "" {
		if pid := openedBy(dir); pid != 0 {
			holder = fmt.Sprintf("process %d has its files open", pid)
		}
	}
	if holder == "" {
		return nil
	}
	return fmt.Errorf("%s is %w by a running Prometheus (%s): reading it could see half-written files. Take a snapshot "+
		"(curl -XPOST http://prometheus:9090/api/v1/admin/tsdb/snapshot, with --web.enable-admin-api) and backfill from %s/snapshots/<name>, "+
		"or stop the Prometheus first", dir, errInUse, holder, dir)
}

// openedBy returns a process (not this one) with a file under dir open, or 0; 0 too
// where /proc cannot tell.
func openedBy(dir string) int {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return 0
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue // gone, or another user's
		}
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); err == nil && strings.HasPrefix(target, abs+"/") {
				return pid
			}
		}
	}
	return 0
}

// sourceBlocks are the block directories of dir (named after a ULID, with a meta.json).
func sourceBlocks(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if _, err := ulid.ParseStrict(e.Name()); err != nil || !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), blocks.MetaFilename)); err == nil {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// headBlock writes the head of the data directory dir (its WAL) as a block under
// workDir, or finds the one an earlier run wrote from the same WAL; "" when the WAL
// holds no samples.
func headBlock(dir, workDir string, logger *slog.Logger) (string, error) {
	segs, err := os.ReadDir(filepath.Join(dir, "wal"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	// The WAL it came from: its files' names and sizes.
	h := sha256.New()
	for _, s := range segs {
		if info, err := s.Info(); err == nil {
			fmt.Fprintf(h, "%s %d\n", s.Name(), info.Size())
		}
	}
	out := filepath.Join(workDir, "head-"+hex.EncodeToString(h.Sum(nil))[:16])
	if found, err := sourceBlocks(out); err == nil && len(found) == 1 {
		return found[0], nil
	}
	if err := os.RemoveAll(out); err != nil {
		return "", err
	}
	sandbox := filepath.Join(workDir, "sandbox")
	if err := os.MkdirAll(sandbox, 0o700); err != nil {
		return "", err
	}
	defer os.RemoveAll(sandbox)
	db, err := tsdb.OpenDBReadOnly(dir, sandbox, logger)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", dir, err)
	}
	defer db.Close()
	tmp := out + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return "", err
	}
	if err := db.FlushWAL(tmp); err != nil {
		return "", fmt.Errorf("writing the head of %s as a block: %w", dir, err)
	}
	if found, _ := sourceBlocks(tmp); len(found) == 0 {
		return "", nil // an empty WAL
	}
	abs, _ := filepath.Abs(dir)
	if err := settleBlock(tmp, "head\x00"+abs+"\x00"+filepath.Base(out)); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	found, err := sourceBlocks(out)
	if err != nil || len(found) == 0 {
		return "", err
	}
	return found[0], nil
}

// cutBlock writes the samples of the block in dir within [mint, maxt) as a block under
// workDir, or finds the one an earlier run wrote; "" when there are none.
func cutBlock(ctx context.Context, dir, workDir string, mint, maxt int64) (string, error) {
	out := filepath.Join(workDir, fmt.Sprintf("cut-%s-%d-%d", filepath.Base(dir), mint, maxt))
	if found, err := sourceBlocks(out); err == nil && len(found) == 1 {
		return found[0], nil
	}
	if _, err := os.Stat(filepath.Join(out, "empty")); err == nil {
		return "", nil
	}
	if err := os.RemoveAll(out); err != nil {
		return "", err
	}
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), dir, nil, nil)
	if err != nil {
		return "", fmt.Errorf("opening block %s: %w", dir, err)
	}
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, mint, maxt-1)
	if err != nil {
		return "", err
	}
	defer q.Close()
	tmp := out + ".tmp"
	_ = os.RemoveAll(tmp)
	w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), tmp, maxt-mint+1)
	if err != nil {
		return "", err
	}
	defer w.Close()
	app := w.Appender(ctx)
	n := 0
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".*"))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		var ref storage.SeriesRef
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				t, v := it.At()
				ref, err = app.Append(ref, s.Labels(), t, v)
			case chunkenc.ValHistogram:
				t, h := it.AtHistogram(nil)
				ref, err = app.AppendHistogram(ref, s.Labels(), t, h, nil)
			case chunkenc.ValFloatHistogram:
				t, fh := it.AtFloatHistogram(nil)
				ref, err = app.AppendHistogram(ref, s.Labels(), t, nil, fh)
			}
			if err != nil {
				return "", fmt.Errorf("cutting block %s: %w", dir, err)
			}
			n++
		}
		if err := it.Err(); err != nil {
			return "", fmt.Errorf("reading block %s: %w", dir, err)
		}
	}
	if err := ss.Err(); err != nil {
		return "", fmt.Errorf("reading block %s: %w", dir, err)
	}
	if err := app.Commit(); err != nil {
		return "", err
	}
	if n == 0 {
		if err := os.MkdirAll(out, 0o700); err != nil {
			return "", err
		}
		return "", os.WriteFile(filepath.Join(out, "empty"), nil, 0o600)
	}
	if _, err := w.Flush(ctx); err != nil {
		return "", fmt.Errorf("cutting block %s: %w", dir, err)
	}
	if err := settleBlock(tmp, fmt.Sprintf("cut\x00%s\x00%d\x00%d", filepath.Base(dir), mint, maxt)); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	found, err := sourceBlocks(out)
	if err != nil || len(found) != 1 {
		return "", fmt.Errorf("cutting block %s: %d blocks written (%v)", dir, len(found), err)
	}
	return found[0], nil
}

// sources are the blocks to move: the data directory's and its head's, or the windows
// read from a remote-read API.
func (cfg BackfillConfig) sources(ctx context.Context) ([]string, error) {
	if cfg.RemoteRead != "" {
		if cfg.Start.IsZero() {
			return nil, errors.New("--remote-read needs --start: how far back to read")
		}
		end := cfg.End
		if end.IsZero() {
			end = time.Now()
		}
		return remoteReadBlocks(ctx, cfg.RemoteReadClient, cfg.RemoteRead, cfg.Start, end, cfg.RemoteReadWindow, cfg.WorkDir, cfg.Out)
	}
	if err := checkNotInUse(cfg.From); err != nil {
		return nil, err
	}
	dirs, err := sourceBlocks(cfg.From)
	if err != nil {
		return nil, err
	}
	head, err := headBlock(cfg.From, cfg.WorkDir, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	if head != "" {
		dirs = append(dirs, head)
	}
	return dirs, nil
}

// Backfill moves cfg.From into the workspace (see backfillUsage).
func Backfill(ctx context.Context, cfg BackfillConfig) (BackfillReport, error) {
	var rep BackfillReport
	start := time.Now()
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return rep, err
	}
	dirs, err := cfg.sources(ctx)
	if err != nil {
		return rep, err
	}
	source := cfg.From
	if cfg.RemoteRead != "" {
		source = cfg.RemoteRead
	}
	type block struct {
		dir   string
		meta  *blocks.Meta
		bytes int64
	}
	var todo []block
	var total int64
	for _, d := range dirs {
		m, err := blocks.ReadLocalMeta(d)
		if err != nil {
			return rep, fmt.Errorf("block %s: %w", d, err)
		}
		mint, maxt := m.MinTime, m.MaxTime
		if !cfg.Start.IsZero() {
			mint = max(mint, cfg.Start.UnixMilli())
		}
		if !cfg.End.IsZero() {
			maxt = min(maxt, cfg.End.UnixMilli())
		}
		if mint >= maxt {
			continue // outside the window
		}
		if mint != m.MinTime || maxt != m.MaxTime {
			if d, err = cutBlock(ctx, d, cfg.WorkDir, mint, maxt); err != nil {
				return rep, err
			}
			if d == "" {
				continue // no sample in the window
			}
			if m, err = blocks.ReadLocalMeta(d); err != nil {
				return rep, err
			}
		}
		_, sizes, err := importer.BlockFiles(d)
		if err != nil {
			return rep, err
		}
		var n int64
		for _, s := range sizes {
			n += s
		}
		todo = append(todo, block{d, m, n})
		total += n
	}
	slices.SortFunc(todo, func(a, b block) int { return int(min(max(a.meta.MinTime-b.meta.MinTime, -1), 1)) })
	fmt.Fprintf(cfg.Out, "%d blocks, %s, from %s\n", len(todo), byteSize(total), source)

	var done int64
	bar := func() {
		if !cfg.TTY {
			return
		}
		el := time.Since(start).Seconds()
		eta := "?"
		if done > 0 && el > 0 {
			eta = time.Duration(float64(total-done) / (float64(done) / el) * float64(time.Second)).Round(time.Second).String()
		}
		width := 30
		fill := int(float64(width) * float64(done) / float64(max(total, 1)))
		fmt.Fprintf(cfg.Out, "\r[%s%s] %3.0f%% %s of %s, %.0f samples/s, ETA %s ", strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
			100*float64(done)/float64(max(total, 1)), byteSize(done), byteSize(total), float64(rep.Samples)/max(el, 1e-9), eta)
	}
	var failed error
	var sent []block // in the workspace: to verify
	for _, b := range todo {
		res, err := cfg.Client.Send(ctx, b.dir, func(n int64) { done += n; rep.Bytes += n; bar() })
		what := fmt.Sprintf("block %s (%s – %s, %d series, %d samples)", b.meta.ULID,
			time.UnixMilli(b.meta.MinTime).UTC().Format(time.RFC3339), time.UnixMilli(b.meta.MaxTime).UTC().Format(time.RFC3339),
			b.meta.Stats.NumSeries, b.meta.Stats.NumSamples)
		line := ""
		switch {
		case err == nil && res.Status == "exists":
			rep.Existed++
			done += b.bytes
			line = what + ": already in the workspace"
			sent = append(sent, b)
		case err == nil:
			rep.Imported++
			sent = append(sent, b)
			rep.Samples += res.Samples
			line = what + ": imported"
		case importer.Refused(err) && strings.Contains(err.Error(), importer.OutOfRetention):
			rep.Skipped++
			done += b.bytes
			line = what + ": skipped, " + err.Error()
		case importer.Refused(err):
			rep.Refused++
			done += b.bytes
			line = what + ": REFUSED, " + err.Error()
		default:
			// The server or the network: stop, the next run goes on from here.
			failed = fmt.Errorf("%s: %w", what, err)
		}
		if failed != nil {
			break
		}
		if cfg.TTY {
			fmt.Fprint(cfg.Out, "\r\033[K")
		}
		fmt.Fprintln(cfg.Out, line)
		bar()
	}
	if cfg.TTY {
		fmt.Fprintln(cfg.Out)
	}
	rep.Took = time.Since(start)
	if failed != nil || !cfg.Verify {
		return rep, failed
	}
	ws := &promClient{base: strings.TrimSuffix(cfg.Client.Endpoint, "/"), hc: cfg.VerifyClient}
	for _, b := range sent {
		diffs, err := verifyBlock(ctx, ws, b.dir, b.meta, cfg.VerifyTimeout, time.Second)
		if err != nil {
			return rep, err
		}
		if len(diffs) == 0 {
			rep.Verified++
			fmt.Fprintf(cfg.Out, "verified block %s: the workspace has its series and samples\n", b.meta.ULID)
			continue
		}
		rep.Mismatched++
		fmt.Fprintf(cfg.Out, "VERIFY block %s: %d metrics differ (other data in the window counts too)\n", b.meta.ULID, len(diffs))
		for _, d := range diffs[:min(len(diffs), 10)] {
			fmt.Fprintf(cfg.Out, "    %s\n", d)
		}
	}
	return rep, nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func runBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("backfill", backfillUsage, stderr)
	var cfg BackfillConfig
	fs.StringVar(&cfg.From, "from", "", "The Prometheus data directory, or a snapshot of it.")
	fs.StringVar(&cfg.RemoteRead, "remote-read", "", "Instead of --from, a Prometheus' remote-read API (http://prometheus:9090/api/v1/read), read from --start.")
	fs.DurationVar(&cfg.RemoteReadWindow, "remote-read-window", 2*time.Hour, "How much --remote-read asks for at a time; each window becomes a block.")
	endpoint := fs.String("workspace-endpoint", "", "The workspace's endpoint (https://…/workspaces/ws-…).")
	fs.StringVar(&cfg.WorkDir, "work-dir", "", "Where the head is written as a block and kept until the backfill is done (default: a folder in the system's temporary directory named after --from).")
	start := fs.String("start", "", "Move only samples from this time on (RFC 3339).")
	end := fs.String("end", "", "Move only samples before this time (RFC 3339).")
	fs.BoolVar(&cfg.Verify, "verify", false, "Then compare each block's series and samples by metric with what the workspace answers for its window.")
	fs.DurationVar(&cfg.VerifyTimeout, "verify-timeout", 2*time.Minute, "How long --verify waits for the workspace to answer with a block (the store-gateway finds new blocks on its next sync).")
	partSize := fs.Int64("part-size", 4<<20, "Bytes per request; below the server's --auth.max-body-bytes (8 MiB by default).")
	region := fs.String("region", os.Getenv("AWS_REGION"), "The region the requests are signed for.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if (cfg.From == "") == (cfg.RemoteRead == "") || *endpoint == "" || *partSize <= 0 || cfg.RemoteReadWindow <= 0 || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	for _, b := range []struct {
		flag string
		in   string
		out  *time.Time
	}{{"--start", *start, &cfg.Start}, {"--end", *end, &cfg.End}} {
		if b.in == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, b.in)
		if err != nil {
			fmt.Fprintf(stderr, "strata migrate backfill: %s: %v\n", b.flag, err)
			return 2
		}
		*b.out = t
	}
	if cfg.WorkDir == "" {
		abs, _ := filepath.Abs(cfg.From)
		sum := sha256.Sum256([]byte(abs + "\x00" + cfg.RemoteRead + "\x00" + *endpoint))
		cfg.WorkDir = filepath.Join(os.TempDir(), "strata-backfill-"+hex.EncodeToString(sum[:])[:12])
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(*region))
	if err != nil {
		fmt.Fprintln(stderr, "strata migrate backfill:", err)
		return 2
	}
	cfg.Client = &importer.Client{Endpoint: *endpoint, HTTP: &http.Client{Timeout: 10 * time.Minute}, PartSize: *partSize,
		Credentials: awsCfg.Credentials, Region: awsCfg.Region}
	cfg.RemoteReadClient = &http.Client{Timeout: 30 * time.Minute}
	cfg.VerifyClient = &http.Client{Timeout: 2 * time.Minute, Transport: sigv4proxy.NewTransport(http.DefaultTransport, awsCfg.Credentials, awsCfg.Region, "aps")}
	cfg.Out = stdout
	if f, ok := stdout.(*os.File); ok {
		if info, err := f.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
			cfg.TTY = true
		}
	}
	rep, err := Backfill(ctx, cfg)
	rate := float64(rep.Samples) / max(rep.Took.Seconds(), 1e-9)
	fmt.Fprintf(stdout, "%d blocks imported (%d samples, %.0f samples/s), %d already in the workspace, %d skipped, %d refused; %s sent in %s\n",
		rep.Imported, rep.Samples, rate, rep.Existed, rep.Skipped, rep.Refused, byteSize(rep.Bytes), rep.Took.Round(time.Millisecond))
	if cfg.Verify && err == nil {
		fmt.Fprintf(stdout, "verified: %d blocks alike, %d different\n", rep.Verified, rep.Mismatched)
	}
	switch {
	case errors.Is(err, errInUse):
		fmt.Fprintln(stderr, "strata migrate backfill:", err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "strata migrate backfill:", err, "(run the same command again to go on)")
		return 1
	case rep.Refused > 0 || rep.Mismatched > 0:
		return 1
	}
	if err := os.RemoveAll(cfg.WorkDir); err != nil {
		fmt.Fprintln(stderr, "strata migrate backfill: removing", cfg.WorkDir+":", err)
	}
	return 0
}

// settleBlock gives the one block written under dir a ULID derived from key (the time of
// its first sample, and a hash of what it was written from), so that writing it again
// from the same source — a later run, a lost work directory — names the same block, and
// the workspace answers that it has it instead of storing it twice.
func settleBlock(dir, key string) error {
	found, err := sourceBlocks(dir)
	if err != nil || len(found) != 1 {
		return fmt.Errorf("%s: %d blocks written (%v)", dir, len(found), err)
	}
	m, err := blocks.ReadLocalMeta(found[0])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(key))
	var entropy [10]byte
	copy(entropy[:], sum[:])
	id, err := ulid.New(uint64(max(m.MinTime, 0)), bytes.NewReader(entropy[:]))
	if err != nil {
		return err
	}
	m.ULID = id
	m.Compaction.Sources = []ulid.ULID{id}
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(found[0], blocks.MetaFilename), b, 0o600); err != nil {
		return err
	}
	return os.Rename(found[0], filepath.Join(dir, id.String()))
}
