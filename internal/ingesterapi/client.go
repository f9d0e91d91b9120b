package ingesterapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"
)

// Member is an ingester a querier can ask: its base URL and zone.
type Member struct {
	ID   string
	URL  string
	Zone string
}

// Members lists the ingesters to ask, the preferred first. Each of them holds every
// partition of the ingest log, so one answer is complete.
type Members interface {
	Ingesters() []Member
}

// maxChunkedFrame bounds one frame read from an ingester.
const maxChunkedFrame = 50 << 20

// Client is a querier.Ingester that reads from the ingesters of other processes: each
// query from one of them, the next when one fails to answer.
type Client struct {
	members Members
	key     string
	hc      *http.Client
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

// ErrNoIngester is returned when no ingester is registered and ready.
var ErrNoIngester = errors.New("no ingester is ready to answer (none registered, or all still catching up with the ingest log)")

// Querier returns a querier over the workspace's samples in [mint, maxt] held by an
// ingester of another process.
func (c *Client) Querier(_ context.Context, workspace string, mint, maxt int64) (storage.Querier, error) {
	ms := c.members.Ingesters()
	if len(ms) == 0 {
		return nil, ErrNoIngester
	}
	return &remoteQuerier{c: c, ws: workspace, mint: mint, maxt: maxt, members: ms}, nil
}

// remoteQuerier sends each call to members[cur] and moves on to the next member when
// one does not answer; the member that answered serves the querier's later calls, so
// that all of a query's selects see one ingester's data.
type remoteQuerier struct {
	c          *Client
	ws         string
	mint, maxt int64
	members    []Member
	cur        int
	bodies     []io.Closer
}

// call posts body to path on the current member, or the next ones, and returns the
// first 200 answer.
func (q *remoteQuerier) call(ctx context.Context, path, contentType string, body []byte) (*http.Response, error) {
	var errs []error
	for ; q.cur < len(q.members); q.cur++ {
		m := q.members[q.cur]
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
		if err == nil && resp.StatusCode == http.StatusOK {
			return resp, nil
		}
		if ctx.Err() != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, ctx.Err()
		}
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
			if resp.StatusCode < 500 {
				// A request this ingester refuses, the next would too.
				return nil, fmt.Errorf("ingester %s: %w", m.ID, err)
			}
		}
		errs = append(errs, fmt.Errorf("ingester %s: %w", m.ID, err))
	}
	return nil, fmt.Errorf("no ingester answered: %w", errors.Join(errs...))
}

func (q *remoteQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
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
	resp, err := q.call(ctx, PathRead, "application/x-protobuf", snappy.Encode(nil, raw))
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	q.bodies = append(q.bodies, resp.Body)
	body := &trailerChecked{ReadCloser: resp.Body, resp: resp}
	return remote.NewChunkedSeriesSet(remote.NewChunkedReader(body, maxChunkedFrame, nil), body, mint, maxt, func(error) {})
}

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
	resp, err := q.call(ctx, PathLabels, "application/json", b)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var out labelsResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, nil, fmt.Errorf("decoding an ingester's answer: %w", err)
	}
	var warns annotations.Annotations
	for _, w := range out.Warnings {
		warns.Add(errors.New(w))
	}
	return out.Values, warns, nil
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
	return nil
}
