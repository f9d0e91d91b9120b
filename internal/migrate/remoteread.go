package migrate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// remoteReadBlocks reads [start, end) from a Prometheus' remote-read API (url, …/api/v1/read)
// one window at a time, each window written as a block under workDir and kept there, so
// that a resumed run reads no window twice. It returns the blocks' directories.
func remoteReadBlocks(ctx context.Context, hc *http.Client, url string, start, end time.Time, window time.Duration, workDir string, out io.Writer) ([]string, error) {
	sum := sha256.Sum256([]byte(url))
	prefix := filepath.Join(workDir, "remote-read-"+hex.EncodeToString(sum[:])[:12])
	var dirs []string
	for from := start; from.Before(end); from = from.Add(window) {
		to := min(from.Add(window).UnixMilli(), end.UnixMilli())
		dir := fmt.Sprintf("%s-%d-%d", prefix, from.UnixMilli(), to)
		if found, err := sourceBlocks(dir); err == nil && len(found) == 1 {
			dirs = append(dirs, found[0])
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "empty")); err == nil {
			continue
		}
		block, n, err := readWindow(ctx, hc, url, from.UnixMilli(), to, dir)
		if err != nil {
			return nil, fmt.Errorf("reading %s – %s from %s: %w", from.UTC().Format(time.RFC3339), time.UnixMilli(to).UTC().Format(time.RFC3339), url, err)
		}
		fmt.Fprintf(out, "read %s – %s: %d samples\n", from.UTC().Format(time.RFC3339), time.UnixMilli(to).UTC().Format(time.RFC3339), n)
		if block != "" {
			dirs = append(dirs, block)
		}
	}
	return dirs, nil
}

// readWindow reads the samples of [mint, maxt) and writes them as a block into dir; ""
// (and an "empty" mark in dir) when there are none.
func readWindow(ctx context.Context, hc *http.Client, url string, mint, maxt int64, dir string) (string, int, error) {
	rr := &prompb.ReadRequest{
		Queries: []*prompb.Query{{StartTimestampMs: mint, EndTimestampMs: maxt - 1,
			Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: labels.MetricName, Value: ".+"}}}},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS},
	}
	raw, err := rr.Marshal()
	if err != nil {
		return "", 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", 0, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}

	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), tmp, maxt-mint+1)
	if err != nil {
		return "", 0, err
	}
	defer w.Close()
	app := w.Appender(ctx)
	n := 0
	var sb labels.ScratchBuilder
	// add appends a chunk's samples of series s; last is the newest appended so far,
	// for chunks that overlap.
	add := func(s *prompb.ChunkedSeries, it chunkenc.Iterator, ref storage.SeriesRef, last *int64) (storage.SeriesRef, error) {
		ls := s.ToLabels(&sb, nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			var t int64
			var err error
			switch vt {
			case chunkenc.ValFloat:
				var v float64
				t, v = it.At()
				if t < mint || t >= maxt || t <= *last {
					continue
				}
				ref, err = app.Append(ref, ls, t, v)
			case chunkenc.ValHistogram:
				var h *histogram.Histogram
				t, h = it.AtHistogram(nil)
				if t < mint || t >= maxt || t <= *last {
					continue
				}
				ref, err = app.AppendHistogram(ref, ls, t, h, nil)
			case chunkenc.ValFloatHistogram:
				var fh *histogram.FloatHistogram
				t, fh = it.AtFloatHistogram(nil)
				if t < mint || t >= maxt || t <= *last {
					continue
				}
				ref, err = app.AppendHistogram(ref, ls, t, nil, fh)
			}
			if err != nil {
				return ref, err
			}
			*last = t
			n++
		}
		return ref, it.Err()
	}

	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-streamed-protobuf") {
		return "", 0, fmt.Errorf("the answer is %q, not streamed chunks (a Prometheus 2.13 or later answers them)", ct)
	}
	{
		cr := remote.NewChunkedReader(resp.Body, 1<<30, nil)
		type seriesState struct {
			ref  storage.SeriesRef
			last int64
		}
		states := map[string]*seriesState{}
		for {
			var res prompb.ChunkedReadResponse
			if err := cr.NextProto(&res); err == io.EOF {
				break
			} else if err != nil {
				return "", 0, err
			}
			for _, s := range res.ChunkedSeries {
				key := fmt.Sprint(s.Labels)
				st := states[key]
				if st == nil {
					st = &seriesState{last: math.MinInt64}
					states[key] = st
				}
				for _, c := range s.Chunks {
					chk, err := chunkenc.FromData(chunkenc.Encoding(c.Type), c.Data)
					if err != nil {
						return "", 0, err
					}
					if st.ref, err = add(s, chk.Iterator(nil), st.ref, &st.last); err != nil {
						return "", 0, err
					}
				}
			}
		}
	}
	if err := app.Commit(); err != nil {
		return "", 0, err
	}
	if n == 0 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", 0, err
		}
		return "", 0, os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	}
	if _, err := w.Flush(ctx); err != nil {
		return "", 0, err
	}
	if err := settleBlock(tmp, fmt.Sprintf("remote-read\x00%s\x00%d\x00%d", url, mint, maxt)); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", 0, err
	}
	found, err := sourceBlocks(dir)
	if err != nil || len(found) != 1 {
		return "", 0, fmt.Errorf("%d blocks written (%v)", len(found), err)
	}
	return found[0], n, nil
}
