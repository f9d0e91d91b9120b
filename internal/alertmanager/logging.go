package alertmanager

import (
	"context"
	"log/slog"
	"sync"
)

// lazyHandler is a slog.Handler that defers the work of WithAttrs and WithGroup to the
// first record logged through the derived handler. The library derives a logger for
// every notification (logger.With("group_key", …) in the retry stage and the notifiers),
// and slog's own handlers format those attributes at once, logged or not: at 10,000
// notifications in a burst that was 7% of the CPU, for debug lines nobody enables.
//
// Enabled asks the root handler: slog's handlers decide by level alone, whatever the
// attributes and groups.
type lazyHandler struct {
	root    slog.Handler
	resolve func() slog.Handler // memoized: the handler with every deferred step applied
}

func newLazyHandler(h slog.Handler) *lazyHandler {
	return &lazyHandler{root: h, resolve: func() slog.Handler { return h }}
}

func (l *lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.root.Enabled(ctx, level)
}

func (l *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	return l.resolve().Handle(ctx, r)
}

func (l *lazyHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return l
	}
	parent := l.resolve
	// The handler owns attrs (slog.Handler's contract), so keeping them is safe.
	return &lazyHandler{root: l.root, resolve: sync.OnceValue(func() slog.Handler { return parent().WithAttrs(attrs) })}
}

func (l *lazyHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return l
	}
	parent := l.resolve
	return &lazyHandler{root: l.root, resolve: sync.OnceValue(func() slog.Handler { return parent().WithGroup(name) })}
}
