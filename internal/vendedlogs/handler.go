package vendedlogs

import (
	"context"
	"log/slog"
	"slices"
	"strings"
)

// Events receives the events vended to a workspace's log group; *Logs implements it.
type Events interface {
	Event(workspace, component, level, msg string, fields ...Field)
}

// HandlerOptions say how a component's log records become vended events.
type HandlerOptions struct {
	Workspace, Component string
	// Fields are the attributes, from With or the record, that also become fields of
	// the event's message, in this order; Rename renames them there and in the text.
	Fields []string
	Rename map[string]string
	// Value, when set, rewrites an attribute's value.
	Value func(key, value string) string
	// Skip are record attributes left out of the event (long ones: a rule's YAML).
	Skip []string
	// Debug are messages vended as warnings although the component logs them at debug
	// level (a scrape that failed: Prometheus' "Scrape failed").
	Debug []string
}

// NewHandler returns a handler that passes records on to inner and vends the warnings
// and errors among them to the workspace's log group: the text is the record's message
// followed by ", key=value" for the Fields and then the record's other attributes, as
// AMP's ruler and alertmanager logs read ("Evaluating rule failed, name=…, group=…,
// namespace=…, err=…"). Nil events returns inner.
func NewHandler(inner slog.Handler, events Events, o HandlerOptions) slog.Handler {
	if events == nil {
		return inner
	}
	return &handler{Handler: inner, events: events, o: o}
}

type handler struct {
	slog.Handler
	events Events
	o      HandlerOptions
	with   []slog.Attr // those of o.Fields given to With
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithAttrs(as)
	for _, a := range as {
		if slices.Contains(h.o.Fields, a.Key) {
			c.with = append(slices.Clip(c.with), a)
		}
	}
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithGroup(name)
	return &c
}

// Enabled admits warnings and errors whatever the level of the server's log, so that
// they are vended even when the server logs only errors.
func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || len(h.o.Debug) > 0 || h.Handler.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn || slices.Contains(h.o.Debug, r.Message) {
		h.vend(r)
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *handler) vend(r slog.Record) {
	level := LevelWarn
	if r.Level >= slog.LevelError {
		level = LevelError
	}
	values := map[string]string{}
	var rest []slog.Attr
	for _, a := range h.with {
		values[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		switch {
		case slices.Contains(h.o.Fields, a.Key):
			values[a.Key] = a.Value.String()
		case !slices.Contains(h.o.Skip, a.Key):
			rest = append(rest, a)
		}
		return true
	})
	var b strings.Builder
	b.WriteString(r.Message)
	var fields []Field
	write := func(k, v string) {
		if h.o.Value != nil {
			v = h.o.Value(k, v)
		}
		if n, ok := h.o.Rename[k]; ok {
			k = n
		}
		b.WriteString(", " + k + "=" + v)
		fields = append(fields, Field{Key: k, Value: v})
	}
	for _, k := range h.o.Fields {
		if v, ok := values[k]; ok {
			write(k, v)
		}
	}
	for _, a := range rest {
		v := a.Value.String()
		if h.o.Value != nil {
			v = h.o.Value(a.Key, v)
		}
		b.WriteString(", " + a.Key + "=" + v)
	}
	h.events.Event(h.o.Workspace, h.o.Component, level, b.String(), fields...)
}
