package ingestlog

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"

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
//
// Concurrent requests share messages: each partition has a lane, and while one message
// of the lane waits for JetStream's acknowledgement the parts of other requests queue
// up; once it is acknowledged they go out together as one bundle message (group commit).
// An idle lane sends a part at once. Fewer, larger messages cost the NATS server and the
// consumers less per sample.
type Publisher struct {
	log   *Log
	state sync.Pool // *publishState
	// bufs holds message buffers (*[]byte): a message may be sent again until
	// JetStream acknowledged it, so a buffer goes back only then.
	bufs  sync.Pool
	lanes []lane
}

// lane is a partition's queue of parts waiting for the message in flight.
type lane struct {
	mu       sync.Mutex
	inFlight bool
	pending  []*part
}

// part is one request's message for a partition, and where its outcome goes.
type part struct {
	msg  *[]byte
	done chan error // buffered: the sender never waits for the request
}

type publishState struct {
	parts [][]int
	key   []byte
	raw   []byte // an uncompressed batch
	hash  *xxhash.Digest
}

// NewPublisher returns a Publisher on l.
func NewPublisher(l *Log) *Publisher {
	p := &Publisher{log: l, lanes: make([]lane, l.cfg.Partitions)}
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
	var parts []*part
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
			pt := &part{msg: m, done: make(chan error, 1)}
			parts = append(parts, pt)
			p.enqueue(k, pt)
		}
	}
	for _, pt := range parts {
		select {
		case err := <-pt.done:
			if err != nil {
				return ingest.Result{}, fmt.Errorf("appending to the ingest log: %w", err)
			}
		case <-ctx.Done():
			// What is queued may still be appended: a sender's retry stores nothing twice.
			return ingest.Result{}, fmt.Errorf("appending to the ingest log: %w", context.Cause(ctx))
		}
	}
	return res, nil
}

// enqueue sends pt on partition k's lane: at once when the lane is idle, else with the
// parts queued behind the message in flight.
func (p *Publisher) enqueue(k int, pt *part) {
	ln := &p.lanes[k]
	ln.mu.Lock()
	if ln.inFlight {
		ln.pending = append(ln.pending, pt)
		ln.mu.Unlock()
		return
	}
	ln.inFlight = true
	ln.mu.Unlock()
	go p.send(k, []*part{pt})
}

// send appends batch to partition k, tells its parts the outcome, then sends what queued
// up meanwhile, until the lane is empty. The lane is in flight until send returns.
func (p *Publisher) send(k int, batch []*part) {
	ln := &p.lanes[k]
	limit := int(p.log.nc.MaxPayload())
	bundle := p.buf()
	defer func() { p.bufs.Put(bundle) }()
	for {
		if len(batch) == 0 {
			ln.mu.Lock()
			if len(ln.pending) == 0 {
				ln.inFlight = false
				ln.mu.Unlock()
				return
			}
			// As many queued parts as fit in one message, first come first.
			n, size := 0, bundleHeader
			for n < len(ln.pending) && (n == 0 || size+bundleEntry+len(*ln.pending[n].msg) <= limit) {
				size += bundleEntry + len(*ln.pending[n].msg)
				n++
			}
			batch = append(batch, ln.pending[:n]...)
			ln.pending = append(ln.pending[:0], ln.pending[n:]...)
			ln.mu.Unlock()
		}
		msg := *batch[0].msg
		if len(batch) > 1 {
			*bundle = appendBundle((*bundle)[:0], batch)
			msg = *bundle
		}
		err := p.publish(k, msg)
		if err != nil {
			bundle = p.buf() // the failed one may still be read by the client: not reused
		}
		for _, pt := range batch {
			if err == nil {
				p.bufs.Put(pt.msg) // acknowledged: never sent again
			}
			pt.done <- err
		}
		batch = batch[:0]
	}
}

// publish appends one message to partition k and waits for JetStream's acknowledgement.
func (p *Publisher) publish(k int, msg []byte) error {
	f, err := p.log.js.PublishAsync(p.log.subject(k), msg)
	if err != nil {
		return err
	}
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	}
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
	// formatBundle is several formatS2 messages of one partition, from concurrent
	// requests: a count, then each message with its length before it (uvarints).
	formatBundle byte = 2
)

// bundleHeader and bundleEntry bound a bundle's bytes besides its messages: the format
// byte and count, and each message's length.
const (
	bundleHeader = 1 + binary.MaxVarintLen64
	bundleEntry  = binary.MaxVarintLen64
)

// appendBundle appends the bundle of parts' messages to b.
func appendBundle(b []byte, parts []*part) []byte {
	b = append(b, formatBundle)
	b = binary.AppendUvarint(b, uint64(len(parts)))
	for _, pt := range parts {
		b = binary.AppendUvarint(b, uint64(len(*pt.msg)))
		b = append(b, *pt.msg...)
	}
	return b
}

// splitBundle calls fn with each message of a bundle, or with msg itself when it is not
// one.
func splitBundle(msg []byte, fn func(msg []byte) error) error {
	if len(msg) == 0 || msg[0] != formatBundle {
		return fn(msg)
	}
	rest := msg[1:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)) {
		return fmt.Errorf("%w: bundle count", ingest.ErrMalformed)
	}
	rest = rest[k:]
	for range n {
		l, k := binary.Uvarint(rest)
		if k <= 0 || l > uint64(len(rest)-k) {
			return fmt.Errorf("%w: bundle entry length", ingest.ErrMalformed)
		}
		if err := fn(rest[k : k+int(l)]); err != nil {
			return err
		}
		rest = rest[k+int(l):]
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d bytes after a bundle", ingest.ErrMalformed, len(rest))
	}
	return nil
}

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
