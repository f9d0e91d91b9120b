package ingesterapi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"
)

// Member is an ingester a querier can ask: its base URL, zone, and the partitions of
// the ingest log it answers for.
type Member struct {
	ID         string
	URL        string
	Zone       string
	Partitions []int
}

// Members lists the ingesters to ask, the preferred first, and the number of
// partitions: a query asks ingesters that together answer for every partition.
type Members interface {
	Ingesters() []Member
	Partitions() int
}

// maxChunkedFrame bounds one frame read from an ingester.
const maxChunkedFrame = 50 << 20

// Client is a querier.Ingester that reads from the ingesters of other processes: each
// query from one of them, the next when one fails to answer.
type Client struct {
	localID        string
	local          Local        // nil: none
	localAnswering func() []int // the partitions the local ingester answers for; nil: as listed
	members        Members
	key            string
	hc             *http.Client
}

// NewClient returns a client that finds ingesters through members and authenticates
// with key. timeout bounds connecting to an ingester and its first answer: a call that
// exceeds it goes to the next ingester (0: 5 s). tr is the transport (nil: a clone of
// http.DefaultTransport).
func NewClient(members Members, key string, timeout time.Duration, tr *http.Transport) *Client {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = timeout
	return &Client{members: members, key: key, hc: &http.Client{Transport: tr}}
}

// Local is an ingester in the querier's own process, asked in process rather than over
// HTTP when it answers for some partitions.
type Local interface {
	Querier(ctx context.Context, workspace string, mint, maxt int64) (storage.Querier, error)
	LocalBlocks(workspace string) func(ulid.ULID) bool
}

// WithLocal makes c ask the member id, an ingester of its own process, in process and
// before the others.
func (c *Client) WithLocal(id string, l Local) *Client {
	c.localID, c.local = id, l
	return c
}

// LocalAnswering says which partitions the local ingester answers for now, as the
// others say it in their answers (Handler.Answering).
func (c *Client) LocalAnswering(answering func() []int) *Client {
	c.localAnswering = answering
	return c
}

// localAnswer stands for the local ingester's answer in a call's answers.
var localAnswer = &http.Response{Body: http.NoBody}

// ErrNoIngester is returned when no ingester is registered and ready.
var ErrNoIngester = errors.New("no ingester is ready to answer (none registered, or all still catching up with the ingest log)")

// Querier returns a querier over the workspace's samples in [mint, maxt] held by an
// ingester of another process.
func (c *Client) Querier(ctx context.Context, workspace string, mint, maxt int64) (storage.Querier, error) {
	q, err := c.newCall(workspace)
	if err != nil {
		return nil, err
	}
	q.mint, q.maxt = mint, maxt
	// Chosen now, so that LocalBlocks knows whether the local ingester will be read (it
	// never fails over: it is not called over the network).
	if plan, err := q.plan(); err == nil {
		q.chosen = plan
		if q.readsLocal() {
			// Opened first: LocalBlocks must match its view.
			if _, err := q.localQuerier(ctx); err != nil {
				return nil, err
			}
		}
	}
	return q, nil
}

// newCall returns a remoteQuerier of the workspace over the members registered now,
// the local ingester first.
func (c *Client) newCall(workspace string) (*remoteQuerier, error) {
	ms := c.members.Ingesters()
	if len(ms) == 0 {
		return nil, ErrNoIngester
	}
	if c.local != nil {
		if i := slices.IndexFunc(ms, func(m Member) bool { return m.ID == c.localID }); i > 0 {
			ms[0], ms[i] = ms[i], ms[0]
		}
	}
	q := &remoteQuerier{c: c, ws: workspace, members: ms, parts: c.members.Partitions(), dead: map[string]error{}, answering: map[string][]int{}}
	if c.local != nil && c.localAnswering != nil {
		// Known now, in process: the plan that decides whether it is read uses it.
		q.answering[c.localID] = c.localAnswering()
	}
	return q, nil
}

func (q *remoteQuerier) readsLocal() bool {
	return q.c.local != nil && slices.ContainsFunc(q.chosen, func(m Member) bool { return m.ID == q.c.localID })
}

// LocalBlocks implements querier.LocalBlocksQuerier: the bucket blocks the local
// ingester holds, when it is among the ingesters this querier reads.
func (q *remoteQuerier) LocalBlocks() func(ulid.ULID) bool {
	if !q.readsLocal() {
		return nil
	}
	return q.c.local.LocalBlocks(q.ws)
}

// remoteQuerier sends each call to ingesters that together answer for every partition
// (chosen in the members' order, so the querier's zone first), and replaces one that
// does not answer with others that answer for its partitions. The ingesters that
// answered serve the querier's later calls, so that all of a query's selects see the
// same data.
type remoteQuerier struct {
	c          *Client
	ws         string
	mint, maxt int64
	members    []Member
	parts      int
	chosen     []Member // the ingesters that answered the last call
	dead       map[string]error
	// answering holds the partitions each ingester that answered said it answers for:
	// they replace those listed, which may be out of date.
	answering map[string][]int
	bodies    []io.Closer
	local     storage.Querier // the local ingester's, once asked
}

// localQuerier opens the local ingester's querier the first time.
func (q *remoteQuerier) localQuerier(ctx context.Context) (storage.Querier, error) {
	if q.local == nil {
		lq, err := q.c.local.Querier(ctx, q.ws, q.mint, q.maxt)
		if err != nil {
			return nil, err
		}
		q.local = lq
	}
	return q.local, nil
}

// plan returns ingesters that together answer for every partition: those chosen so far
// first, then the members in order, none that failed.
func (q *remoteQuerier) plan() ([]Member, error) {
	covered := make([]bool, q.parts)
	n := 0
	var out []Member
	seen := map[string]bool{}
	for _, m := range slices.Concat(q.chosen, q.members) {
		if seen[m.ID] || q.dead[m.ID] != nil {
			continue
		}
		seen[m.ID] = true
		adds := false
		parts := m.Partitions
		if said, ok := q.answering[m.ID]; ok {
			parts = said
		}
		for _, p := range parts {
			if p >= 0 && p < q.parts && !covered[p] {
				covered[p] = true
				n++
				adds = true
			}
		}
		if adds {
			out = append(out, m)
		}
		if n == q.parts {
			return out, nil
		}
	}
	var missing []int
	for p, ok := range covered {
		if !ok {
			missing = append(missing, p)
		}
	}
	var errs []error
	for id, err := range q.dead {
		errs = append(errs, fmt.Errorf("ingester %s: %w", id, err))
	}
	return nil, fmt.Errorf("%w: partitions %v: %w", ErrNoIngester, missing, errors.Join(errs...))
}

// call posts body to path on ingesters that together answer for every partition and
// returns their 200 answers.
func (q *remoteQuerier) call(ctx context.Context, path, contentType string, body []byte) ([]*http.Response, error) {
	answered := map[string]*http.Response{}
	closeAll := func() {
		for _, r := range answered {
			r.Body.Close()
		}
	}
	for {
		plan, err := q.plan()
		if err != nil {
			closeAll()
			return nil, err
		}
		var todo []Member
		for _, m := range plan {
			switch {
			case answered[m.ID] != nil:
			case q.c.local != nil && m.ID == q.c.localID:
				answered[m.ID] = localAnswer // asked when its answer is read
			default:
				todo = append(todo, m)
			}
		}
		if len(todo) == 0 {
			out := make([]*http.Response, len(plan))
			for i, m := range plan {
				out[i] = answered[m.ID]
				delete(answered, m.ID)
			}
			closeAll() // answers the plan no longer needs
			q.chosen = plan
			return out, nil
		}
		resps := make([]*http.Response, len(todo))
		errs := make([]error, len(todo))
		var wg sync.WaitGroup
		for i, m := range todo {
			wg.Go(func() { resps[i], errs[i] = q.post(ctx, m, path, contentType, body) })
		}
		wg.Wait()
		var refused error
		for i, m := range todo {
			switch {
			case errs[i] == nil:
				answered[m.ID] = resps[i]
				if said, ok := parsePartitions(resps[i].Header); ok {
					q.answering[m.ID] = said
				}
			case errors.As(errs[i], new(refusal)):
				refused = errs[i]
			default:
				q.dead[m.ID] = errs[i]
			}
		}
		if refused != nil || ctx.Err() != nil {
			closeAll()
			return nil, cmp.Or(ctx.Err(), refused)
		}
		q.chosen = nil
		for _, m := range plan {
			if answered[m.ID] != nil {
				q.chosen = append(q.chosen, m)
			}
		}
	}
}

// refusal is an ingester's 4xx: the others would refuse the request too.
type refusal struct{ error }

// post sends one request to m; an answer other than 200 is an error.
func (q *remoteQuerier) post(ctx context.Context, m Member, path, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(m.URL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+q.c.key)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set(headerWorkspace, q.ws)
	if contentType == "application/x-protobuf" {
		req.Header.Set("Content-Encoding", "snappy")
	}
	resp, err := q.c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	if resp.StatusCode < 500 {
		return nil, refusal{fmt.Errorf("ingester %s: %w", m.ID, err)}
	}
	return nil, err
}

func (q *remoteQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = hints.Start, hints.End // as a TSDB querier reads
	}
	pq, err := remote.ToQuery(q.mint, q.maxt, ms, hints)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	raw, err := proto.Marshal(&prompb.ReadRequest{Queries: []*prompb.Query{pq},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS}})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	path := PathRead
	if hints != nil && hints.ShardCount > 0 {
		// A sharded query's shard: the ingester lists only its series. (prompb's hints
		// have no shard; an ingester that ignores this answers every series, and its
		// answer does not say the shard: below, the others' series are dropped.)
		path += "?" + url.Values{"shard": {strconv.FormatUint(hints.ShardIndex, 10)}, "of": {strconv.FormatUint(hints.ShardCount, 10)}}.Encode()
	}
	resps, err := q.call(ctx, path, "application/x-protobuf", snappy.Encode(nil, raw))
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	sets := make([]storage.SeriesSet, len(resps))
	for i, resp := range resps {
		if resp == localAnswer {
			lq, err := q.localQuerier(ctx)
			if err != nil {
				return storage.ErrSeriesSet(err)
			}
			sets[i] = lq.Select(ctx, sortSeries || len(resps) > 1, hints, ms...)
			continue
		}
		q.bodies = append(q.bodies, resp.Body)
		body := &trailerChecked{ReadCloser: resp.Body, resp: resp}
		sets[i] = remote.NewChunkedSeriesSet(remote.NewChunkedReader(body, maxChunkedFrame, nil), body, mint, maxt, func(error) {})
		if hints != nil && hints.ShardCount > 0 && resp.Header.Get(headerShard) != formatShard(hints.ShardIndex, hints.ShardCount) {
			sets[i] = &shardFilter{SeriesSet: sets[i], shard: hints.ShardIndex, of: hints.ShardCount}
		}
	}
	if len(sets) == 1 {
		return sets[0]
	}
	// Each answers for some partitions, and may hold older samples of others (from
	// before a partition moved): a series in several answers is merged, each sample once.
	return storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
}

// shardFilter keeps the series of one shard (labels.StableHash % of == shard), the
// storage contract of a sharded select, of an answer holding every series.
type shardFilter struct {
	storage.SeriesSet
	shard, of uint64
	at        storage.Series
}

func (s *shardFilter) Next() bool {
	for s.SeriesSet.Next() {
		if at := s.SeriesSet.At(); labels.StableHash(at.Labels())%s.of == s.shard {
			s.at = at
			return true
		}
	}
	s.at = nil
	return false
}

func (s *shardFilter) At() storage.Series { return s.at }

// trailerChecked turns the end of a stream whose trailer reports an error into that
// error.
type trailerChecked struct {
	io.ReadCloser
	resp *http.Response
}

func (t *trailerChecked) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		if msg := t.resp.Trailer.Get(trailerError); msg != "" {
			return n, fmt.Errorf("the ingester's answer ended early: %s", msg)
		}
	}
	return n, err
}

func (q *remoteQuerier) labels(ctx context.Context, name string, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
	pm, err := matchersJSON(ms)
	if err != nil {
		return nil, nil, err
	}
	req := labelsRequest{Start: q.mint, End: q.maxt, Name: name, Matchers: pm}
	if hints != nil {
		req.Limit = hints.Limit
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	resps, err := q.call(ctx, PathLabels, "application/json", b)
	if err != nil {
		return nil, nil, err
	}
	var (
		all   []string
		warns annotations.Annotations
		errs  []error
	)
	for _, resp := range resps {
		if resp == localAnswer {
			lq, err := q.localQuerier(ctx)
			if err != nil {
				return nil, nil, err
			}
			var vals []string
			var w annotations.Annotations
			if name == "" {
				vals, w, err = lq.LabelNames(ctx, hints, ms...)
			} else {
				vals, w, err = lq.LabelValues(ctx, name, hints, ms...)
			}
			if err != nil {
				return nil, nil, err
			}
			all = append(all, vals...)
			warns.Merge(w)
			continue
		}
		var out labelsResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			errs = append(errs, fmt.Errorf("decoding an ingester's answer: %w", err))
		}
		resp.Body.Close()
		all = append(all, out.Values...)
		for _, w := range out.Warnings {
			warns.Add(errors.New(w))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if req.Limit > 0 && len(all) > req.Limit {
		all = all[:req.Limit]
	}
	return all, warns, nil
}

func (q *remoteQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if name == "" {
		return nil, nil, nil
	}
	return q.labels(ctx, name, hints, ms)
}

func (q *remoteQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labels(ctx, "", hints, ms)
}

func (q *remoteQuerier) Close() error {
	for _, b := range q.bodies {
		_ = b.Close()
	}
	q.bodies = nil
	if q.local != nil {
		err := q.local.Close()
		q.local = nil
		return err
	}
	return nil
}
