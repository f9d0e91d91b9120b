// Package vendedlogs writes the logs AMP "vends" to a workspace's log group: rule
// evaluation failures, Alertmanager notification failures, remote-write rejections
// (the workspace's logging configuration) and costly queries (its query logging
// configuration). Records are queued without blocking the caller — a full queue drops
// the record and counts it, so logging never slows ingestion or queries — and one
// goroutine appends them as JSON lines to the log group's folder under Config.Dir
// (one folder per log group, rotated by size and age), which log shippers read.
//
//	ruler / alertmanager / distributor / query ──▶ Logs.Event / Logs.Query
//	        (workspace → log group from meta) ──▶ queue ──▶ Run ──▶ <dir>/<account>/<region>/<group>/events.log
package vendedlogs

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/stratametrics/strata/internal/meta"
)

// Config configures the vended logs.
type Config struct {
	// Dir holds one folder per log group; empty means <data-dir>/logs.
	Dir          string        `yaml:"dir"`
	MaxFileBytes int64         `yaml:"max_file_bytes"`
	MaxFileAge   time.Duration `yaml:"max_file_age"`
	MaxFiles     int           `yaml:"max_files"`
	QueueSize    int           `yaml:"queue_size"`
	// CloudWatchEndpoint, when set, forwards every record to that CloudWatch
	// Logs-compatible API too (PutLogEvents), into log stream CloudWatchStream.
	CloudWatchEndpoint  string        `yaml:"cloudwatch_endpoint"`
	CloudWatchStream    string        `yaml:"cloudwatch_stream"`
	CloudWatchBatchWait time.Duration `yaml:"cloudwatch_batch_wait"`
	CloudWatchQueue     int           `yaml:"cloudwatch_queue_size"`
}

// RegisterFlags registers the flags under "logs.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Dir, "logs.dir", "", "Directory of the workspaces' vended logs (logging and query logging configurations): one folder per log group, <account>/<region>/<log group name, escaped>/events.log, JSON lines. Empty: <data-dir>/logs.")
	f.Int64Var(&c.MaxFileBytes, "logs.max-file-bytes", 64<<20, "A log group's current file is rotated once it reaches this size.")
	f.DurationVar(&c.MaxFileAge, "logs.max-file-age", 24*time.Hour, "A log group's current file is rotated once its first record is this old.")
	f.IntVar(&c.MaxFiles, "logs.max-files", 10, "Rotated files kept per log group; the oldest beyond are removed.")
	f.StringVar(&c.CloudWatchEndpoint, "logs.cloudwatch.endpoint", "", "Also forward every record to this CloudWatch Logs-compatible API (PutLogEvents, signed with the standard AWS credential chain, in the log group ARN's region). With it, a logging configuration whose log group does not exist there is a ValidationException, as in AMP. Empty: files only.")
	f.StringVar(&c.CloudWatchStream, "logs.cloudwatch.stream", "", "Log stream the records are forwarded into, created when missing. Empty: strata/<host name>.")
	f.DurationVar(&c.CloudWatchBatchWait, "logs.cloudwatch.batch-wait", 5*time.Second, "Longest a record waits for others to share its PutLogEvents call.")
	f.IntVar(&c.CloudWatchQueue, "logs.cloudwatch.queue-size", 100, "PutLogEvents calls waiting to be sent; beyond it their records are dropped (strata_vended_logs_dropped_total{reason=\"forward_queue_full\"}).")
	f.IntVar(&c.QueueSize, "logs.queue-size", 10000, "Records waiting to be written; beyond it records are dropped (strata_vended_logs_dropped_total), so logging never blocks ingestion or queries.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxFileBytes < 4096 {
		return errors.New("max file bytes must be at least 4096")
	}
	if c.MaxFileAge < time.Minute {
		return errors.New("max file age must be at least 1m")
	}
	if c.MaxFiles < 1 || c.QueueSize < 1 {
		return errors.New("max files and queue size must be positive")
	}
	if c.CloudWatchEndpoint != "" && (c.CloudWatchBatchWait <= 0 || c.CloudWatchQueue < 1) {
		return errors.New("cloudwatch batch wait and queue size must be positive")
	}
	return nil
}

// Components of a record, AMP's "component" field.
const (
	ComponentRuler        = "ruler"
	ComponentAlertmanager = "alertmanager"
	ComponentIngestion    = "ingestion"
	ComponentQuery        = "query"
)

// Levels of a record.
const (
	LevelError = "ERROR"
	LevelWarn  = "WARN"
	LevelInfo  = "INFO"
)

// Workspaces answers a workspace's record; *meta.Store implements it.
type Workspaces interface {
	PeekWorkspace(id string) (meta.Workspace, bool)
}

// Logs queues and writes vended log records.
type Logs struct {
	cfg        Config
	workspaces Workspaces
	logger     *slog.Logger
	now        func() time.Time
	queue      chan entry

	written *prometheus.CounterVec
	dropped *prometheus.CounterVec
	reg     prometheus.Registerer
	fw      *forwarder // nil without forwarding
}

// entry is one queued record, or a sync marker (done set).
type entry struct {
	group string    // log group ARN
	at    time.Time // when the record was made
	msg   []byte    // AMP's record, JSON: what CloudWatch Logs receives
	done  chan struct{}
}

// New returns the vended logs of the workspaces, written under cfg.Dir (which must be
// set). reg may be nil.
func New(cfg Config, workspaces Workspaces, reg prometheus.Registerer, logger *slog.Logger) *Logs {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	return &Logs{
		cfg:        cfg,
		workspaces: workspaces,
		logger:     logger,
		now:        time.Now,
		queue:      make(chan entry, cfg.QueueSize),
		written: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_vended_logs_records_total",
			Help: "Vended log records queued to be written, by component.",
		}, []string{"component"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_vended_logs_dropped_total",
			Help: "Vended log records dropped, by reason: queue_full (the writer is behind), write_failed, forward_queue_full (CloudWatch Logs is behind).",
		}, []string{"reason"}),
		reg: reg,
	}
}

// UseCloudWatch forwards every record to api too; call before Run. A logging
// configuration then needs its log group to exist there.
func (l *Logs) UseCloudWatch(api LogGroupAPI) {
	stream := l.cfg.CloudWatchStream
	if stream == "" {
		stream = defaultStream()
	}
	l.fw = newForwarder(api, stream, l.cfg.CloudWatchBatchWait, l.cfg.CloudWatchQueue, l.logger, l.reg, l.dropped)
}

// SetClock replaces the clock records are stamped and files rotated with (tests).
func (l *Logs) SetClock(now func() time.Time) { l.now = now }

// Field is one extra field of a record's message.
type Field struct {
	Key   string
	Value any
}

// Event logs one event of a workspace's component to the log group of its logging
// configuration, as AMP does: {"workspaceId", "message": {"log", "level", fields…},
// "component"}. Without a logging configuration it does nothing.
func (l *Logs) Event(workspace, component, level, msg string, fields ...Field) {
	if l == nil {
		return
	}
	ws, ok := l.workspaces.PeekWorkspace(workspace)
	if !ok || !ws.Logging.Logs() {
		return
	}
	l.enqueue(ws.Logging.LogGroupARN, component, workspace, message(level, msg, fields))
}

// message is an event's message: the text, the level and the fields.
func message(level, msg string, fields []Field) map[string]any {
	m := make(map[string]any, 2+len(fields))
	for _, f := range fields {
		m[f.Key] = f.Value
	}
	m["log"], m["level"] = msg, level
	return m
}

// ScraperEvent logs an event of a scraper's component (SERVICE_DISCOVERY, COLLECTOR,
// EXPORTER) to the log group of the scraper's logging configuration:
// {"scraperId", "message": {"log", "level", fields…}, "component"}.
func (l *Logs) ScraperEvent(group, scraper, component, level, msg string, fields ...Field) {
	if l == nil {
		return
	}
	l.enqueueTo(group, component, "scraperId", scraper, message(level, msg, fields))
}

// QueryRecord describes one query for query logging.
type QueryRecord struct {
	// Query is the PromQL expression; Type "instant" or "range" (or "rule" for a
	// rule's query); Start, End and Step its time range (Step zero for instant).
	Query      string
	Type       string
	Start, End time.Time
	Step       time.Duration
	// SamplesProcessed (AMP's QSP) and SeriesFetched measure its cost; SeriesFetched
	// is -1 when not counted.
	SamplesProcessed int64
	SeriesFetched    int64
	Duration         time.Duration
	// Status is "success" or "error"; Error the error's text.
	Status string
	Error  string
	// Principal is the ARN of the caller; RuleGroup names the rule's group for rule queries.
	Principal string
	RuleGroup string
}

// Query logs a query of a workspace to the log group of its query logging
// configuration when it processed at least the configuration's qspThreshold samples.
func (l *Logs) Query(workspace string, q QueryRecord) {
	if l == nil {
		return
	}
	ws, ok := l.workspaces.PeekWorkspace(workspace)
	if !ok || !ws.QueryLogging.Logs() || q.SamplesProcessed < ws.QueryLogging.QSPThreshold {
		return
	}
	message := map[string]any{
		"query":            q.Query,
		"queryType":        q.Type,
		"start":            q.Start.UTC().Format(time.RFC3339Nano),
		"end":              q.End.UTC().Format(time.RFC3339Nano),
		"samplesProcessed": q.SamplesProcessed,
		"durationMs":       q.Duration.Milliseconds(),
		"status":           q.Status,
		"level":            LevelInfo,
	}
	if q.SeriesFetched >= 0 {
		message["seriesFetched"] = q.SeriesFetched
	}
	if q.Step > 0 {
		message["stepSeconds"] = q.Step.Seconds()
	}
	if q.Error != "" {
		message["error"] = q.Error
	}
	if q.Principal != "" {
		message["principal"] = q.Principal
	}
	if q.RuleGroup != "" {
		message["ruleGroup"] = q.RuleGroup
	}
	l.enqueue(ws.QueryLogging.LogGroupARN, ComponentQuery, workspace, message)
}

// record is a line of a log group's file: AMP's record (of a workspace, or of a
// scraper) with the time it was made.
type record struct {
	Time        string         `json:"time,omitempty"`
	WorkspaceID string         `json:"workspaceId,omitempty"`
	ScraperID   string         `json:"scraperId,omitempty"`
	Message     map[string]any `json:"message"`
	Component   string         `json:"component"`
}

func (l *Logs) enqueue(group, component, workspace string, message map[string]any) {
	l.enqueueTo(group, component, "workspaceId", workspace, message)
}

// enqueueTo queues a record of the resource (idKey names it: workspaceId or scraperId).
func (l *Logs) enqueueTo(group, component, idKey, id string, message map[string]any) {
	rec := record{Message: message, Component: component}
	if idKey == "scraperId" {
		rec.ScraperID = id
	} else {
		rec.WorkspaceID = id
	}
	msg, err := json.Marshal(rec)
	if err != nil {
		// A field that does not encode is a bug of the caller; keep the event.
		rec.Message = map[string]any{"log": fmt.Sprint(message["log"]), "level": message["level"]}
		msg, _ = json.Marshal(rec)
	}
	select {
	case l.queue <- entry{group: group, at: l.now(), msg: msg}:
		l.written.WithLabelValues(component).Inc()
	default:
		l.dropped.WithLabelValues("queue_full").Inc()
	}
}

// fileLine is a record as a line of a log group's file: the record with the time it
// was made first.
func fileLine(at time.Time, msg []byte) []byte {
	line := make([]byte, 0, len(msg)+48)
	line = append(line, `{"time":"`...)
	line = at.UTC().AppendFormat(line, time.RFC3339Nano)
	line = append(line, `",`...)
	line = append(line, msg[1:]...)
	return append(line, '\n')
}

// Sync waits until every record queued before it is written, or ctx ends.
func (l *Logs) Sync(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case l.queue <- entry{done: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run writes queued records until ctx ends, then writes what is left and closes the
// files (and sends what is left to CloudWatch Logs, for at most 10 s).
func (l *Logs) Run(ctx context.Context) error {
	w := &writer{cfg: l.cfg, now: l.now, files: map[string]*groupFile{}}
	defer w.closeAll()
	idle := time.NewTicker(time.Minute)
	defer idle.Stop()
	var flush <-chan time.Time
	if l.fw != nil {
		sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			l.fw.run(sendCtx)
		}()
		defer func() {
			l.fw.flushOld(l.now(), true)
			close(l.fw.send)
			select {
			case <-sent:
			case <-time.After(10 * time.Second):
				l.logger.Warn("vended log records still being sent to CloudWatch Logs at shutdown; giving up")
			}
			cancel()
		}()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		flush = t.C
	}
	for {
		select {
		case e := <-l.queue:
			l.handle(w, e)
		case <-idle.C:
			w.closeIdle(5 * time.Minute)
		case <-flush:
			l.fw.flushOld(l.now(), false)
		case <-ctx.Done():
			for {
				select {
				case e := <-l.queue:
					l.handle(w, e)
				default:
					return nil
				}
			}
		}
	}
}

func (l *Logs) handle(w *writer, e entry) {
	if e.done != nil {
		if l.fw != nil {
			// Sync also means: handed to the sender.
			l.fw.flushOld(l.now(), true)
		}
		close(e.done)
		return
	}
	if err := w.write(e.group, fileLine(e.at, e.msg)); err != nil {
		l.dropped.WithLabelValues("write_failed").Inc()
		l.logger.Warn("writing a vended log record", "log_group", e.group, "err", err)
	}
	if l.fw != nil {
		l.fw.add(e.group, e.at, e.msg, l.now())
	}
}

// logGroupARN is AMP's pattern of a log group ARN (the model's LogGroupArn).
var logGroupARN = regexp.MustCompile(`^arn:aws[a-z0-9-]*:logs:([a-z0-9-]+):([0-9]{12}):log-group:([A-Za-z0-9.\-_#/]{1,512}):\*$`)

// ParseLogGroupARN returns the region, account and name of a log group ARN.
func ParseLogGroupARN(arn string) (region, account, name string, err error) {
	m := logGroupARN.FindStringSubmatch(arn)
	if m == nil {
		return "", "", "", fmt.Errorf("%q is not a log group ARN (arn:aws:logs:<region>:<account>:log-group:<name>:*)", arn)
	}
	return m[1], m[2], m[3], nil
}

// Folder is the folder of a log group's files under dir: <account>/<region>/<name>,
// the name's "/" escaped as "%2F" and a leading "." as "%2E", so every log group has
// one folder of its own and none lies outside dir.
func Folder(dir, arn string) (string, error) {
	region, account, name, err := ParseLogGroupARN(arn)
	if err != nil {
		return "", err
	}
	name = strings.ReplaceAll(name, "/", "%2F")
	if strings.HasPrefix(name, ".") {
		name = "%2E" + name[1:]
	}
	return filepath.Join(dir, account, region, name), nil
}

// CheckLogGroup makes sure records can be written to a log group: it exists in
// CloudWatch Logs when forwarding, and its folder is made. The control plane calls it
// when a configuration is created or updated, and before it is ACTIVE.
func (l *Logs) CheckLogGroup(ctx context.Context, arn string) error {
	dir, err := Folder(l.cfg.Dir, arn)
	if err != nil {
		return err
	}
	if l.fw != nil {
		if err := l.fw.checkLogGroup(ctx, arn); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("log group folder: %w", err)
	}
	return nil
}

// writer appends records to the log groups' files; only Run's goroutine uses it.
type writer struct {
	cfg   Config
	now   func() time.Time
	files map[string]*groupFile
}

// groupFile is a log group's current file.
type groupFile struct {
	dir      string
	f        *os.File
	size     int64
	opened   time.Time // of its first record, for rotation by age
	lastUsed time.Time
}

const currentFile = "events.log"

func (w *writer) write(group string, line []byte) error {
	g := w.files[group]
	if g == nil {
		dir, err := Folder(w.cfg.Dir, group)
		if err != nil {
			return err
		}
		g = &groupFile{dir: dir}
		w.files[group] = g
	}
	now := w.now()
	if g.f != nil && (g.size+int64(len(line)) > w.cfg.MaxFileBytes || now.Sub(g.opened) >= w.cfg.MaxFileAge) {
		if err := g.rotate(now, w.cfg.MaxFiles); err != nil {
			return err
		}
	}
	if g.f == nil {
		if err := g.open(now); err != nil {
			return err
		}
	}
	n, err := g.f.Write(line)
	g.size += int64(n)
	g.lastUsed = now
	return err
}

// open opens the current file for appending. A file reopened after an idle close keeps
// its age; one left by an earlier process keeps its size, and its age counts from now.
func (g *groupFile) open(now time.Time) error {
	if err := os.MkdirAll(g.dir, 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(g.dir, currentFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	g.f, g.size = f, st.Size()
	if g.opened.IsZero() || g.size == 0 {
		g.opened = now
	}
	return nil
}

// rotate renames the current file after the time it is rotated at and removes the
// oldest rotated files beyond keep.
func (g *groupFile) rotate(now time.Time, keep int) error {
	if err := g.f.Close(); err != nil {
		return err
	}
	g.f, g.opened = nil, time.Time{}
	name := "events-" + now.UTC().Format("20060102T150405.000000000Z") + ".log"
	if err := os.Rename(filepath.Join(g.dir, currentFile), filepath.Join(g.dir, name)); err != nil {
		return err
	}
	rotated, err := filepath.Glob(filepath.Join(g.dir, "events-*.log"))
	if err != nil {
		return err
	}
	slices.Sort(rotated) // by the time in their names
	for _, old := range rotated[:max(0, len(rotated)-keep)] {
		if err := os.Remove(old); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) closeIdle(after time.Duration) {
	now := w.now()
	for _, g := range w.files {
		if g.f != nil && now.Sub(g.lastUsed) >= after {
			g.f.Close()
			g.f = nil
		}
	}
}

func (w *writer) closeAll() {
	for _, g := range w.files {
		if g.f != nil {
			g.f.Close()
		}
	}
	clear(w.files)
}
