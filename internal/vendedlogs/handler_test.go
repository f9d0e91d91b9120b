package vendedlogs

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

type recorded struct {
	workspace, component, level, msg string
	fields                           []Field
}

type recorder struct{ events []recorded }

func (r *recorder) Event(workspace, component, level, msg string, fields ...Field) {
	r.events = append(r.events, recorded{workspace, component, level, msg, fields})
}

// Warnings and errors are vended with the fields named, renamed, in order, and the
// record's other attributes but the skipped ones; debug records only when listed; the
// server's log gets what its level admits, unchanged.
func TestHandler(t *testing.T) {
	var out bytes.Buffer
	inner := slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelError})
	rec := &recorder{}
	logger := slog.New(NewHandler(inner, rec, HandlerOptions{
		Workspace: "ws-a", Component: ComponentRuler,
		Fields: []string{"name", "group", "file"}, Rename: map[string]string{"file": "namespace"},
		Value: func(k, v string) string { return strings.TrimPrefix(v, "ws-a/") },
		Skip:  []string{"rule"},
		Debug: []string{"Scrape failed"},
	}))
	g := logger.With("file", "ws-a/team", "group", "g1", "workspace", "ws-a").With("name", "r1")
	g.Warn("Evaluating rule failed", "rule", "record: r1\nexpr: x", "err", "boom")
	g.Debug("Scrape failed", "err", "refused")
	g.Debug("something else")
	g.Error("Failed to restore 'for' state", "err", "gone")

	if len(rec.events) != 3 {
		t.Fatalf("%d events, want 3: %+v", len(rec.events), rec.events)
	}
	e := rec.events[0]
	if e.workspace != "ws-a" || e.component != "ruler" || e.level != LevelWarn ||
		e.msg != "Evaluating rule failed, name=r1, group=g1, namespace=team, err=boom" || len(e.fields) != 3 || e.fields[2] != (Field{"namespace", "team"}) {
		t.Fatalf("first event %+v", e)
	}
	if rec.events[1].level != LevelWarn || rec.events[1].msg != "Scrape failed, name=r1, group=g1, namespace=team, err=refused" {
		t.Fatalf("debug event %+v", rec.events[1])
	}
	if rec.events[2].level != LevelError {
		t.Fatalf("error event %+v", rec.events[2])
	}
	// The server's log: only the error, with every attribute, as the inner handler writes it.
	if s := out.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "file=ws-a/team") || !strings.Contains(s, "restore") {
		t.Fatalf("server log:\n%s", s)
	}
}
