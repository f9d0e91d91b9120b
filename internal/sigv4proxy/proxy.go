package sigv4proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// HealthPath answers 200 on the proxy itself; it is never forwarded.
const HealthPath = "/-/healthy"

const (
	unsignedPayload = "UNSIGNED-PAYLOAD"
	roleSessionName = "strata-sigv4-proxy"
)

var emptySHA256 = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:]) }()

// Proxy signs requests and forwards them to the upstream. It is an
// http.Handler, safe for concurrent use; Close releases its idle upstream
// connections.
type Proxy struct {
	upstream    upstream
	maxBuffered int64 // < 0: always stream
	timeout     time.Duration
	logger      *slog.Logger
	transport   *http.Transport
	rp          *httputil.ReverseProxy
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

	p := &Proxy{
		upstream:    up,
		maxBuffered: cfg.MaxBufferedBodyBytes,
		timeout:     cfg.Timeout,
		logger:      logger,
		transport:   tr,
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
	path        string // upstream prefix + the path as the client sent it
	payloadHash string // x-amz-content-sha256
}

type outboundKey struct{}

func outboundFrom(ctx context.Context) *outbound {
	o, _ := ctx.Value(outboundKey{}).(*outbound)
	return o
}

// Payload modes, for logs.
const (
	payloadEmpty    = "empty"
	payloadSigned   = "sha256"
	payloadStreamed = "unsigned"
)

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
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
	// The signer canonicalizes the query as Go's url.ParseQuery reads it,
	// which drops what it cannot parse; the upstream would then compute
	// another signature. Say so instead of forwarding a doomed request.
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		http.Error(w, "sigv4-proxy: the query string cannot be signed as sent: "+err.Error(), http.StatusBadRequest)
		return
	}

	ctx := r.Context()
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	out := r.WithContext(ctx)
	hash, mode, err := p.prepareBody(out)
	if err != nil {
		p.logger.Info("reading request body", "method", r.Method, "path", rawPath, "err", err)
		http.Error(w, "sigv4-proxy: "+err.Error(), http.StatusBadRequest)
		return
	}
	o := &outbound{path: p.upstream.prefix + rawPath, payloadHash: hash}
	out = out.WithContext(context.WithValue(ctx, outboundKey{}, o))

	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			// ReverseProxy aborts the response with http.ErrAbortHandler when
			// the upstream body fails mid-stream.
			p.logger.Warn("response aborted", "method", r.Method, "path", rawPath, "status", rec.status,
				"duration", time.Since(start), "err", v)
			panic(v)
		}
	}()
	p.rp.ServeHTTP(rec, out)
	p.logger.Debug("proxied request", "method", r.Method, "path", rawPath, "status", rec.status,
		"payload", mode, "request_bytes", out.ContentLength, "response_bytes", rec.bytes, "duration", time.Since(start))
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

// prepareBody decides how r's body is signed, replacing r.Body with a
// buffered copy when it reads it. It returns the x-amz-content-sha256 value
// and the mode for logs.
func (p *Proxy) prepareBody(r *http.Request) (hash, mode string, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return emptySHA256, payloadEmpty, nil
	}
	limit := p.maxBuffered
	if limit < 0 || r.ContentLength > limit {
		return unsignedPayload, payloadStreamed, nil
	}
	var buf []byte
	if r.ContentLength > 0 {
		buf = make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return "", "", fmt.Errorf("reading request body: %w", err)
		}
	} else {
		// Unknown length (chunked): buffer up to the limit, then give up
		// and stream what was read followed by the rest.
		if buf, err = io.ReadAll(io.LimitReader(r.Body, limit+1)); err != nil {
			return "", "", fmt.Errorf("reading request body: %w", err)
		}
		if int64(len(buf)) > limit {
			r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
			return unsignedPayload, payloadStreamed, nil
		}
		if len(buf) == 0 {
			r.Body, r.ContentLength, r.TransferEncoding = http.NoBody, 0, nil
			return emptySHA256, payloadEmpty, nil
		}
	}
	sum := sha256.Sum256(buf)
	r.ContentLength = int64(len(buf))
	r.TransferEncoding = nil // a chunked request goes out with a Content-Length
	r.Body = io.NopCloser(bytes.NewReader(buf))
	// Lets the transport retry on a stale keep-alive connection.
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return hex.EncodeToString(sum[:]), payloadSigned, nil
}

type readCloser struct {
	io.Reader
	io.Closer
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
