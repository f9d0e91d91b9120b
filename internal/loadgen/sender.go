package loadgen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/stratametrics/strata/internal/version"
)

// Remote write headers (https://prometheus.io/docs/specs/prw/remote_write_spec_2_0/).
const (
	contentTypeV1      = "application/x-protobuf"
	contentTypeV2      = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	versionHeader      = "X-Prometheus-Remote-Write-Version"
	samplesWrittenHdr  = "X-Prometheus-Remote-Write-Samples-Written"
	sigv4Service       = "aps"
	maxErrorBodyToKeep = 256
)

// client sends HTTP requests, signed with SigV4 when configured. It is safe
// for concurrent use: the signer is stateless and the credentials provider
// is wrapped in aws.CredentialsCache, which is.
type client struct {
	http      *http.Client
	signer    *v4.Signer // nil: requests are not signed
	creds     aws.CredentialsProvider
	region    string
	userAgent string
}

func newClient(hc *http.Client, cfg Config) *client {
	c := &client{http: hc, region: cfg.SigV4Region, userAgent: "strata-loadgen/" + version.Version}
	if cfg.SigV4 {
		c.signer = v4.NewSigner()
		c.creds = cfg.Credentials
		if _, ok := c.creds.(*aws.CredentialsCache); !ok {
			c.creds = aws.NewCredentialsCache(c.creds)
		}
	}
	return c
}

// do sends body to url. payloadHash is the hex SHA-256 of body when signing
// ("" computes it). The caller must close the response body.
func (c *client) do(ctx context.Context, method, url string, header http.Header, body []byte, payloadHash string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.userAgent)
	if c.signer != nil {
		if payloadHash == "" {
			payloadHash = hashHex(body)
		}
		creds, err := c.creds.Retrieve(ctx)
		if err != nil {
			return nil, fmt.Errorf("retrieving AWS credentials: %w", err)
		}
		if err := c.signer.SignHTTP(ctx, creds, req, payloadHash, sigv4Service, c.region, time.Now()); err != nil {
			return nil, fmt.Errorf("signing request: %w", err)
		}
	}
	return c.http.Do(req)
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// attempt is the outcome of one remote write HTTP request.
type attempt struct {
	status     int // 0: no HTTP response (err is set)
	err        error
	retryAfter time.Duration
	written    int64  // the Samples-Written header, -1 when absent
	body       string // start of the response body when not 2xx
	latency    time.Duration
}

func (a attempt) retryable() bool {
	return a.status == 0 || a.status == http.StatusTooManyRequests || a.status >= 500
}

// writer posts encoded, compressed remote write requests.
type writer struct {
	c       *client
	header  http.Header
	timeout time.Duration
}

func newWriter(c *client, cfg Config) *writer {
	h := http.Header{}
	h.Set("Content-Encoding", "snappy")
	if cfg.Protocol == ProtocolV2 {
		h.Set("Content-Type", contentTypeV2)
		h.Set(versionHeader, "2.0.0")
	} else {
		h.Set("Content-Type", contentTypeV1)
		h.Set(versionHeader, "0.1.0")
	}
	return &writer{c: c, header: h, timeout: cfg.Timeout}
}

func (w *writer) post(ctx context.Context, url string, body []byte, payloadHash string) attempt {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	start := time.Now()
	resp, err := w.c.do(ctx, http.MethodPost, url, w.header, body, payloadHash)
	if err != nil {
		return attempt{err: err, written: -1, latency: time.Since(start)}
	}
	defer resp.Body.Close()
	a := attempt{status: resp.StatusCode, written: -1}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyToKeep))
		a.body = strings.TrimSpace(string(msg))
		a.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"))
	}
	// Drain so the connection is reused; bounded, the body is a message.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	a.latency = time.Since(start)
	if v := resp.Header.Get(samplesWrittenHdr); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			a.written = n
		}
	}
	return a
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// newHTTPClient is the client used when Config.HTTPClient is nil: enough
// idle connections that every worker keeps its own.
func newHTTPClient(conns int) (*http.Client, *http.Transport) {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &http.Client{Transport: tr}, tr
}
