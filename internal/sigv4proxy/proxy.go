package sigv4proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// HealthPath answers 200 on the proxy itself; it is never forwarded.
const HealthPath = "/-/healthy"

const roleSessionName = "strata-sigv4-proxy"

// retryAfter is the Retry-After of a 503 for a full proxy: the requests it waits for
// are remote-write batches and queries, mostly done within a second. Prometheus'
// remote write retries a 5xx after max(its backoff, Retry-After).
const retryAfter = "1"

var emptySHA256 = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:]) }()

// Proxy signs requests and forwards them to the upstream. It is an
// http.Handler, safe for concurrent use; Close releases its idle upstream
// connections.
type Proxy struct {
	upstream          upstream
	allow             allowList
	allowControlPlane bool
	controlPlane      allowList // to say which flag a refused request needs
	maxBody           int64
	bodyTimeout       time.Duration
	timeout           time.Duration
	maxConcurrent     int
	slots             chan struct{} // a token per request being proxied (MaxConcurrent)
	bodyBytes         *byteBudget   // request bytes held in memory (MaxInFlightBodyBytes)
	now               func() time.Time
	logger            *slog.Logger
	transport         *http.Transport
	rp                *httputil.ReverseProxy
}

// New loads credentials and returns a Proxy for cfg. It retrieves
// credentials once, so a missing or broken credential source fails here
// rather than on the first request; ctx bounds that and the loading of the
// AWS shared config.
func New(ctx context.Context, cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sigv4-proxy config: %w", err)
	}
	cfg = cfg.withDefaults()
	up, err := parseUpstream(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	allow, err := newAllowList(cfg)
	if err != nil {
		return nil, fmt.Errorf("sigv4-proxy config: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	creds, err := loadCredentials(ctx, cfg)
	if err != nil {
		return nil, err
	}
	got, err := creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("retrieving AWS credentials: %w", err)
	}
	// The access key ID is not a secret; it tells the operator which
	// identity signs.
	logger.Info("aws credentials loaded", "access_key_id", got.AccessKeyID, "source", got.Source,
		"temporary", got.SessionToken != "", "role_arn", cfg.RoleARN)

	// http.DefaultTransport's settings, plus: pass the upstream's
	// Content-Encoding through untouched instead of asking for gzip and
	// decompressing behind the client's back; keep more idle connections to
	// the one upstream.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	if cfg.UpstreamCAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.UpstreamCAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream CA file %s holds no PEM certificate", cfg.UpstreamCAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}

	p := &Proxy{
		upstream:          up,
		allow:             allow,
		allowControlPlane: cfg.AllowControlPlane,
		controlPlane:      controlPlaneRules(),
		maxBody:           cfg.MaxBodyBytes,
		bodyTimeout:       cfg.BodyTimeout,
		timeout:           cfg.Timeout,
		maxConcurrent:     cfg.MaxConcurrent,
		slots:             make(chan struct{}, cfg.MaxConcurrent),
		bodyBytes:         &byteBudget{limit: cfg.MaxInFlightBodyBytes},
		now:               time.Now,
		logger:            logger,
		transport:         tr,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: p.rewrite,
		Transport: &signingTransport{
			next:    tr,
			creds:   creds,
			signer:  v4.NewSigner(),
			region:  cfg.Region,
			service: cfg.Service,
			now:     time.Now,
		},
		ErrorHandler: p.handleError,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// loadCredentials returns a cached credentials provider: the standard
// chain (or cfg.Credentials), optionally assuming cfg.RoleARN.
func loadCredentials(ctx context.Context, cfg Config) (aws.CredentialsProvider, error) {
	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	switch {
	case cfg.Credentials != nil:
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	case cfg.Profile != "":
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS config: %w", err)
	}
	if awsCfg.Credentials == nil {
		return nil, errors.New("loading AWS config: no credentials provider")
	}
	creds := awsCfg.Credentials // LoadDefaultConfig wraps it in an aws.CredentialsCache
	if cfg.RoleARN != "" {
		creds = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(awsCfg), cfg.RoleARN,
			func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = roleSessionName }))
	}
	return creds, nil
}

// Close closes idle connections to the upstream. Requests in flight are not
// affected; stop the http.Server first.
func (p *Proxy) Close() error {
	p.transport.CloseIdleConnections()
	return nil
}

// outbound is what ServeHTTP decided for a request, handed to rewrite and
// the signing transport through the request context.
type outbound struct {
	path        string // upstream prefix + the canonical path checked by the allow-list
	payloadHash string // x-amz-content-sha256
}

type outboundKey struct{}

func outboundFrom(ctx context.Context) *outbound {
	o, _ := ctx.Value(outboundKey{}).(*outbound)
	return o
}

// Payload modes, for logs.
const (
	payloadEmpty  = "empty"
	payloadSigned = "sha256"
)

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := p.now()
	rawPath, ok := requestPath(r)
	if !ok {
		http.Error(w, "sigv4-proxy: request target must be an absolute path", http.StatusBadRequest)
		return
	}
	if rawPath == HealthPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Strata sigv4-proxy is Healthy.\n")
		return
	}
	// Nothing is read, signed or forwarded before the allow-list admits the request.
	path, err := canonicalPath(rawPath)
	if err != nil {
		p.refuse(w, r, rawPath, http.StatusForbidden, fmt.Sprintf("sigv4-proxy: %s %s is not forwarded: %v.\n", r.Method, rawPath, err))
		return
	}
	if !p.allow.admits(r.Method, path) {
		p.refuse(w, r, rawPath, http.StatusForbidden, p.refusal(r.Method, rawPath, path))
		return
	}
	// The signer canonicalizes the query as Go's url.ParseQuery reads it,
	// which drops what it cannot parse; the upstream would then compute
	// another signature. Say so instead of forwarding a doomed request.
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		http.Error(w, "sigv4-proxy: the query string cannot be signed as sent: "+err.Error(), http.StatusBadRequest)
		return
	}
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	default:
		// Answered at once, not queued: the client (Prometheus' remote write,
		// Grafana) retries, and waiting requests would hold their bodies.
		w.Header().Set("Retry-After", retryAfter)
		p.refuse(w, r, rawPath, http.StatusServiceUnavailable,
			fmt.Sprintf("sigv4-proxy: %d requests are in flight, the most --max-concurrent allows; retry later.\n", p.maxConcurrent))
		return
	}

	ctx := r.Context()
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	out := r.WithContext(ctx)
	hash, mode, release, err := p.readBody(w, out)
	defer release()
	if err != nil {
		p.bodyError(w, r, rawPath, err)
		return
	}
	o := &outbound{path: p.upstream.prefix + path.escaped, payloadHash: hash}
	out = out.WithContext(context.WithValue(ctx, outboundKey{}, o))

	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			// ReverseProxy aborts the response with http.ErrAbortHandler when
			// the upstream body fails mid-stream.
			p.logger.Warn("response aborted", "method", r.Method, "path", rawPath, "status", rec.status,
				"duration", p.now().Sub(start), "err", v)
			panic(v)
		}
	}()
	p.rp.ServeHTTP(rec, out)
	p.logger.Debug("proxied request", "method", r.Method, "path", rawPath, "upstream_path", o.path, "status", rec.status,
		"payload", mode, "request_bytes", out.ContentLength, "response_bytes", rec.bytes, "duration", p.now().Sub(start))
}

// refusal says why the allow-list refused a request and which flag, if any, admits it.
func (p *Proxy) refusal(method, rawPath string, path cpath) string {
	switch {
	case !p.allowControlPlane && p.controlPlane.admits(method, path):
		return fmt.Sprintf("sigv4-proxy: %s %s is AMP's control plane, which this proxy does not sign for its clients "+
			"unless started with --allow-control-plane.\n", method, path.escaped)
	case len(path.slashes) > 0:
		return fmt.Sprintf("sigv4-proxy: %s %s is not forwarded: %v.\n", method, rawPath, errEncodedSlash)
	}
	return fmt.Sprintf("sigv4-proxy: %s %s is not on the proxy's allow-list (by default the data plane of AMP workspaces: "+
		"remote_write, the query API under /workspaces/<id>/api/v1/, the Alertmanager API v2); "+
		"start the proxy with --allow %q to forward it.\n", method, path.escaped, method+" "+path.escaped)
}

// refuse answers a request the proxy does not forward, as plain text.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, rawPath string, status int, msg string) {
	p.logger.Info("request refused", "method", r.Method, "path", rawPath, "status", status, "reason", strings.TrimSpace(msg))
	http.Error(w, strings.TrimSuffix(msg, "\n"), status)
}

// bodyError answers a request whose body readBody refused.
func (p *Proxy) bodyError(w http.ResponseWriter, r *http.Request, rawPath string, err error) {
	var msg string
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, errBodyTooLarge):
		status = http.StatusRequestEntityTooLarge
		msg = fmt.Sprintf("sigv4-proxy: the request body is larger than --max-body-bytes (%d bytes).", p.maxBody)
	case errors.Is(err, errBodyBudget):
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", retryAfter)
		msg = fmt.Sprintf("sigv4-proxy: requests in flight hold %d bytes of bodies, the most --max-in-flight-body-bytes allows; retry later.",
			p.bodyBytes.limit)
	case isTimeout(err):
		status = http.StatusRequestTimeout
		msg = fmt.Sprintf("sigv4-proxy: the request body did not arrive within --body-timeout (%v).", p.bodyTimeout)
	default:
		msg = "sigv4-proxy: " + err.Error()
	}
	if status != http.StatusServiceUnavailable {
		// The rest of the body is not read: the connection cannot carry another request.
		w.Header().Set("Connection", "close")
	}
	p.refuse(w, r, rawPath, status, msg)
}

// requestPath returns the path exactly as the client sent it.
func requestPath(r *http.Request) (string, bool) {
	if u := r.RequestURI; u != "" && u[0] == '/' {
		path, _, _ := strings.Cut(u, "?")
		return path, true
	}
	// Absolute-form request targets ("GET http://host/path"), and requests
	// built in-process without a RequestURI.
	if r.URL == nil || r.URL.Opaque != "" {
		return "", false
	}
	switch path := r.URL.EscapedPath(); {
	case path == "":
		return "/", true
	case path[0] == '/':
		return path, true
	}
	return "", false
}

// Errors of readBody.
var (
	errBodyTooLarge = errors.New("request body too large")
	errBodyBudget   = errors.New("too many request body bytes in flight")
)

// readBody reads r's body into memory, within MaxBodyBytes, the in-flight budget and
// the body deadline, and replaces r.Body with the copy. It returns the body's
// x-amz-content-sha256, the mode for logs, and the function that gives the body's
// bytes back to the budget (always set; call it when the request is done).
func (p *Proxy) readBody(w http.ResponseWriter, r *http.Request) (hash, mode string, release func(), err error) {
	var reserved int64
	release = func() { p.bodyBytes.release(reserved) }
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return emptySHA256, payloadEmpty, release, nil
	}
	if r.ContentLength > p.maxBody {
		return "", "", release, errBodyTooLarge
	}
	// The deadline is on the connection: set it for reading the body only,
	// then lift it, as the server would have for the next request.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(p.now().Add(p.bodyTimeout)); err == nil {
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	} else if !errors.Is(err, http.ErrNotSupported) {
		return "", "", release, fmt.Errorf("setting the body deadline: %w", err)
	} // else a ResponseWriter without deadlines: the server's ReadTimeout bounds the read.

	var buf []byte
	if r.ContentLength > 0 {
		if !p.bodyBytes.reserve(r.ContentLength) {
			return "", "", release, errBodyBudget
		}
		reserved = r.ContentLength
		buf = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return "", "", release, fmt.Errorf("reading request body: %w", err)
		}
	} else {
		// Unknown length (chunked): reserve as the bytes arrive, one more
		// than the limit to tell a body at the limit from a larger one.
		rr := &reservingReader{r: io.LimitReader(r.Body, p.maxBody+1), budget: p.bodyBytes}
		buf, err = io.ReadAll(rr)
		reserved = rr.n
		switch {
		case errors.Is(err, errBodyBudget):
			return "", "", release, err
		case err != nil:
			return "", "", release, fmt.Errorf("reading request body: %w", err)
		case int64(len(buf)) > p.maxBody:
			return "", "", release, errBodyTooLarge
		case len(buf) == 0:
			r.Body, r.ContentLength, r.TransferEncoding = http.NoBody, 0, nil
			return emptySHA256, payloadEmpty, release, nil
		}
	}
	sum := sha256.Sum256(buf)
	r.ContentLength = int64(len(buf))
	r.TransferEncoding = nil // a chunked request goes out with a Content-Length
	r.Body = io.NopCloser(bytes.NewReader(buf))
	// Lets the transport retry on a stale keep-alive connection.
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return hex.EncodeToString(sum[:]), payloadSigned, release, nil
}

// isTimeout tells whether err is a read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// byteBudget counts the request bytes held in memory. Safe for concurrent use.
type byteBudget struct {
	limit int64
	mu    sync.Mutex // guards used
	used  int64
}

// reserve takes n bytes if they fit, else reports false and takes none.
func (b *byteBudget) reserve(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// reservingReader reserves from budget the bytes it reads; n counts them. A read that
// does not fit ends with errBodyBudget.
type reservingReader struct {
	r      io.Reader
	budget *byteBudget
	n      int64
}

func (rr *reservingReader) Read(b []byte) (int, error) {
	n, err := rr.r.Read(b)
	if n > 0 {
		if !rr.budget.reserve(int64(n)) {
			return 0, errBodyBudget
		}
		rr.n += int64(n)
	}
	return n, err
}

// signingHeaders are the client's headers that would let it choose what
// the upstream verifies; the proxy signs afresh.
var signingHeaders = map[string]bool{
	"authorization":        true,
	"x-amz-date":           true,
	"x-amz-security-token": true,
	"x-amz-content-sha256": true,
	"x-amz-algorithm":      true,
	"x-amz-credential":     true,
	"x-amz-signature":      true,
	"x-amz-signedheaders":  true,
	"x-amz-expires":        true,
}

// rewrite points the outbound request at the upstream. ReverseProxy has
// already removed hop-by-hop headers.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	o := outboundFrom(pr.In.Context())
	u := &url.URL{
		Scheme: p.upstream.scheme,
		Host:   p.upstream.host,
		// pr.Out.URL.RawQuery has been "cleaned"; send the client's.
		RawQuery:   pr.In.URL.RawQuery,
		ForceQuery: pr.In.URL.ForceQuery,
	}
	if strings.HasPrefix(o.path, "//") {
		// An opaque "//x" would read as a host; url.URL sends a path like
		// this one as given when RawPath is a valid encoding of Path.
		u.Path, _ = url.PathUnescape(o.path)
		u.RawPath = o.path
	} else {
		// Opaque goes on the wire byte for byte, and the SDK signer reads
		// the path from it as is.
		u.Opaque = o.path
	}
	pr.Out.URL = u
	pr.Out.Host = p.upstream.host

	for k := range pr.Out.Header {
		if signingHeaders[strings.ToLower(k)] {
			delete(pr.Out.Header, k)
		}
	}
	// Protocol upgrades (websockets, h2c) are not proxied: the request goes
	// out as a plain one. Expect is answered by our server; request
	// trailers would not be signed.
	pr.Out.Header.Del("Connection")
	pr.Out.Header.Del("Upgrade")
	pr.Out.Header.Del("Expect")
	pr.Out.Header.Del("Trailer")
	pr.Out.Trailer = nil
}

// signError is a failure to sign, as opposed to one talking to the upstream.
type signError struct{ err error }

func (e *signError) Error() string { return "signing request: " + e.err.Error() }
func (e *signError) Unwrap() error { return e.err }

// handleError answers a request the upstream did not answer.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusBadGateway, ""
	var se *signError
	var ue *url.Error
	switch {
	case errors.As(err, &se):
		status, msg = http.StatusInternalServerError, err.Error()
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		status, msg = http.StatusGatewayTimeout, fmt.Sprintf("upstream %s did not answer within %v", p.upstream.host, p.timeout)
	case errors.As(err, &ue):
		// url.Error would print the opaque URL oddly, and the query.
		msg = fmt.Sprintf("upstream %s://%s: %v", p.upstream.scheme, p.upstream.host, ue.Err)
	default:
		msg = fmt.Sprintf("upstream %s://%s: %v", p.upstream.scheme, p.upstream.host, err)
	}
	path := ""
	if o := outboundFrom(r.Context()); o != nil {
		path = o.path
	}
	if errors.Is(err, context.Canceled) {
		p.logger.Debug("client went away", "method", r.Method, "path", path, "err", err)
	} else {
		p.logger.Warn("proxying request", "method", r.Method, "path", path, "status", status, "err", msg)
	}
	http.Error(w, "sigv4-proxy: "+msg, status)
}

// statusRecorder remembers the status and size of a response for the log.
// Unwrap keeps http.ResponseController (flushing) working.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	// 1xx come from the transport's goroutine; only final statuses are kept.
	if code >= 200 && s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
