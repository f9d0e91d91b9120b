package ingestlog

import (
	"context"
	"fmt"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratametrics/strata/internal/ingest"
	"github.com/stratametrics/strata/internal/remotewrite"
)

// Publisher is the distributor's Pusher in distributed mode: it splits each batch by
// partition (hash of workspace and series labels), appends the parts to the log and
// returns once JetStream has stored all of them.
//
// Its Result counts what was appended. The ingesters apply the per-series limits and
// the TSDB's checks when they consume, so refusals there (series limits, out-of-order
// samples) are not in the answer: they are counted in the discarded-samples metrics and
// logged, as in Mimir's ingest storage.
type Publisher struct {
	log   *Log
	state sync.Pool // *publishState
	// bufs holds message buffers (*[]byte): a message may be sent again until
	// JetStream acknowledged it, so a buffer goes back only then.
	bufs sync.Pool
}

type publishState struct {
	parts [][]int
	key   []byte
	raw   []byte // an uncompressed batch
	hash  *xxhash.Digest
}

// NewPublisher returns a Publisher on l.
func NewPublisher(l *Log) *Publisher {
	p := &Publisher{log: l}
	p.state.New = func() any {
		return &publishState{parts: make([][]int, l.cfg.Partitions), hash: xxhash.New()}
	}
	return p
}

// Partition returns the partition of a series of a workspace, from its labels' key
// (remotewrite.Series.AppendKey).
func (p *Publisher) partition(st *publishState, workspace string, key []byte) int {
	st.hash.Reset()
	_, _ = st.hash.WriteString(workspace)
	_, _ = st.hash.Write([]byte{0})
	_, _ = st.hash.Write(key)
	return int(st.hash.Sum64() % uint64(len(st.parts)))
}

// Push implements ingest.Pusher.
func (p *Publisher) Push(ctx context.Context, workspace string, req *remotewrite.Request, opts ingest.Options) (ingest.Result, error) {
	st := p.state.Get().(*publishState)
	defer p.state.Put(st)
	for i := range st.parts {
		st.parts[i] = st.parts[i][:0]
	}
	var res ingest.Result
	for i := range req.Series {
		s := &req.Series[i]
		st.key = s.AppendKey(st.key[:0])
		k := p.partition(st, workspace, st.key)
		st.parts[k] = append(st.parts[k], i)
		res.Samples += len(s.Samples)
		res.Histograms += len(s.Histograms)
		res.Exemplars += len(s.Exemplars)
	}
	// Remote write 1.0's request-level metadata goes with the workspace's partition.
	metaPart := -1
	if len(req.Metadata) > 0 {
		st.key = st.key[:0]
		metaPart = p.partition(st, workspace, nil)
	}
	var (
		futures []jetstream.PubAckFuture
		used    []*[]byte
	)
	limit := int(p.log.nc.MaxPayload())
	for k, series := range st.parts {
		if len(series) == 0 && k != metaPart {
			continue
		}
		msgs, err := splitBatch(workspace, req, opts, series, k == metaPart, limit, &st.raw, p.buf)
		if err != nil {
			return ingest.Result{}, err
		}
		for _, m := range msgs {
			used = append(used, m)
			f, err := p.log.js.PublishAsync(p.log.subject(k), *m)
			if err != nil {
				return ingest.Result{}, fmt.Errorf("appending to the ingest log: %w", err)
			}
			futures = append(futures, f)
		}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return ingest.Result{}, fmt.Errorf("appending to the ingest log: %w", err)
		case <-ctx.Done():
			return ingest.Result{}, fmt.Errorf("appending to the ingest log: %w", context.Cause(ctx))
		}
	}
	// Every message is acknowledged: none is sent again, the buffers are free.
	for _, b := range used {
		p.bufs.Put(b)
	}
	return res, nil
}

// buf returns an empty message buffer.
func (p *Publisher) buf() *[]byte {
	if b, ok := p.bufs.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

// Message formats: the first byte of a message says how the rest is encoded.
const (
	// formatS2 is a batch (ingest.AppendBatch) compressed as one S2 block: labels are
	// most of a batch's bytes and compress several times over, and every byte is written,
	// replicated and read again by NATS.
	formatS2 byte = 1
)

// splitBatch encodes the series of one partition as messages of at most limit bytes,
// halving the series until each part fits, into buffers from buf; raw is scratch space
// for the uncompressed batch.
func splitBatch(workspace string, req *remotewrite.Request, opts ingest.Options, series []int, withMeta bool, limit int, raw *[]byte, buf func() *[]byte) ([]*[]byte, error) {
	*raw = ingest.AppendBatchSeries((*raw)[:0], workspace, req, opts, series, withMeta)
	b := buf()
	need := 1 + s2.MaxEncodedLen(len(*raw))
	if cap(*b) < need {
		*b = make([]byte, 0, need)
	}
	*b = (*b)[:need]
	(*b)[0] = formatS2
	enc := s2.Encode((*b)[1:], *raw) // fits: written in place
	*b = (*b)[:1+len(enc)]
	n := len(*b)
	if n <= limit {
		return []*[]byte{b}, nil
	}
	if len(series) <= 1 {
		what := "metadata"
		if len(series) == 1 {
			what = req.Series[series[0]].String()
		}
		return nil, fmt.Errorf("%s encodes to %d bytes, more than %d: %w", what, n, limit, ingest.ErrTooLarge)
	}
	half := len(series) / 2
	a, err := splitBatch(workspace, req, opts, series[:half], withMeta, limit, raw, buf)
	if err != nil {
		return nil, err
	}
	c, err := splitBatch(workspace, req, opts, series[half:], false, limit, raw, buf)
	if err != nil {
		return nil, err
	}
	return append(a, c...), nil
}

// decodeMessage returns the batch a message holds, decompressed into scratch.
func decodeMessage(scratch []byte, msg []byte) ([]byte, error) {
	if len(msg) == 0 || msg[0] != formatS2 {
		return nil, fmt.Errorf("%w: unknown message format", ingest.ErrMalformed)
	}
	n, err := s2.DecodedLen(msg[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ingest.ErrMalformed, err)
	}
	if n > maxBatchBytes {
		return nil, fmt.Errorf("%w: batch of %d bytes", ingest.ErrMalformed, n)
	}
	if cap(scratch) < n {
		scratch = make([]byte, n)
	}
	b, err := s2.Decode(scratch[:n], msg[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ingest.ErrMalformed, err)
	}
	return b, nil
}

// maxBatchBytes bounds a decompressed batch: far above what a message limit lets
// through compressed, far below what would hurt.
const maxBatchBytes = 256 << 20
