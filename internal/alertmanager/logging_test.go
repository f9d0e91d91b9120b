package alertmanager

import (
	"bytes"
	"log/slog"
	"testing"
)

// A logger on lazyHandler writes what one on the handler itself writes, attributes and
// groups added before and after included, and is disabled where it is.
func TestLazyHandlerWritesTheSame(t *testing.T) {
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	var direct, lazy bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: noTime}
	for _, l := range []*slog.Logger{
		slog.New(slog.NewJSONHandler(&direct, opts)),
		slog.New(newLazyHandler(slog.NewJSONHandler(&lazy, opts))),
	} {
		l = l.With("workspace", "ws-a")
		l.Info("one", "n", 1)
		g := l.WithGroup("").WithGroup("notify").With().With("receiver", "hook")
		g.Info("two", "err", "boom")
		g.WithGroup("inner").Info("three", "k", "v")
		g.Debug("not written")
		l.With("a", 1).With("b", 2).Warn("four")
	}
	if direct.String() != lazy.String() {
		t.Fatalf("lazy handler wrote\n%s\nthe handler itself\n%s", lazy.String(), direct.String())
	}
	if n := bytes.Count(direct.Bytes(), []byte("\n")); n != 4 {
		t.Fatalf("%d lines written, want 4:\n%s", n, direct.String())
	}
}
