package ingestlog

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
)

// MetaNotifier carries the ids of workspaces just written between the processes of a
// cluster (meta.Notifier), on a plain NATS subject: a lost message costs only the wait
// for the next poll of the bucket.
type MetaNotifier struct{ log *Log }

// NewMetaNotifier returns the notifier of the log's cluster.
func NewMetaNotifier(l *Log) *MetaNotifier { return &MetaNotifier{log: l} }

func (n *MetaNotifier) subject() string { return n.log.cfg.JetStream.Stream + ".meta.changed" }

// Changed publishes id.
func (n *MetaNotifier) Changed(_ context.Context, id string) error {
	if err := n.log.nc.Publish(n.subject(), []byte(id)); err != nil {
		return fmt.Errorf("publishing a workspace change: %w", err)
	}
	return nil
}

// Watch calls f with every id published, until ctx is done.
func (n *MetaNotifier) Watch(ctx context.Context, f func(id string)) error {
	sub, err := n.log.nc.Subscribe(n.subject(), func(m *nats.Msg) { f(string(m.Data)) })
	if err != nil {
		return fmt.Errorf("subscribing to workspace changes: %w", err)
	}
	<-ctx.Done()
	return sub.Unsubscribe()
}
