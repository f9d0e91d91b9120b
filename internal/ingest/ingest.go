// Package ingest is the boundary between the distributor and the ingesters: what the
// distributor hands on (a validated batch and its options), what storing it answers
// (counts, refusals and typed errors), and the wire form of both, so that the boundary
// can cross a network or an ingest log while single-process mode keeps calling the
// ingester directly. Neither side imports the other; both import this package.
package ingest

import (
	"context"
	"errors"

	"github.com/stratametrics/strata/internal/remotewrite"
)

// Pusher stores validated batches of a workspace: the ingester in process, or a
// transport that carries the batch to one.
//
// In process the request is handed over as decoded, without a copy: it is valid until
// Push returns and Push must not keep any of it. A transport sends AppendBatch's bytes.
type Pusher interface {
	Push(ctx context.Context, workspace string, req *remotewrite.Request, opts Options) (Result, error)
}

// Options say how to store a batch.
type Options struct {
	// DropLabel is removed from every series before storage (the HA replica label).
	DropLabel string
}

// Result is what storing a batch did. Refusals of single series or samples are not
// errors of the call: the rest of the batch is stored.
type Result struct {
	Samples, Histograms, Exemplars int
	// Invalid is the first client error (a sample the TSDB refused: out of order, too
	// old, duplicate timestamp with a new value, invalid histogram); nil when none.
	Invalid error
	// Limited is the first series-limit refusal; nil when none. It maps to HTTP 429.
	Limited error
	// LimitedQuota names the quota of Limited (usage.Quota*).
	LimitedQuota string
}

// Errors of a whole batch, which nothing of the batch was stored for. They keep their
// identity across the wire (errors.Is works on the far side).
var (
	// ErrWorkspaceDeleted: the workspace's data is being or was removed.
	ErrWorkspaceDeleted = errors.New("workspace is deleted")
	// ErrStopped: the ingester is shutting down; it opens no TSDB again.
	ErrStopped = errors.New("ingester is stopped")
	// ErrTooLarge: a series (or the metadata) of the batch alone is larger than a
	// transport's message limit. Sending it again will not help.
	ErrTooLarge = errors.New("larger than the ingest log's message limit")
)
