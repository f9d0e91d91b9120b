// Package server is Strata's HTTP edge: the public listener (plain HTTP or TLS, with a
// connection cap), the internal listener for operators (/metrics and pprof, on loopback by
// default), one router, and the instrumentation every route shares. Start from New;
// components hand it their routes with Handle.
//
//	public  --listen ──▶ conn cap ──▶ TLS? ──▶ router ──▶ routes (behind SigV4, mounted by app)
//	                                               └──▶ /-/healthy, /-/ready (no auth, no detail)
//	internal --internal.listen ──▶ /metrics, /debug/pprof/, /-/healthy, /-/ready (no auth)
package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/tlsutil"
)

// Config configures the HTTP server.
type Config struct {
	// Listen is the address to listen on; port 0 picks a free port.
	Listen string `yaml:"listen"`
	// InternalListen is the address of the internal listener: /metrics, pprof and the
	// health endpoints, without authentication. Empty means none; /metrics is then only
	// on the public listener, behind SigV4 (strata:GetMetrics).
	InternalListen string `yaml:"internal_listen"`
	// ExternalURL is the URL clients reach this server at. Empty means http://<listen
	// address> (https:// with TLS).
	ExternalURL       string        `yaml:"external_url"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's header section. Zero means 64 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConnections caps the open connections of the public listener; more are closed
	// at once. Zero means no cap.
	MaxConnections int `yaml:"max_connections"`
	// ShutdownTimeout bounds how long in-flight requests may finish after a stop signal.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// EnablePprof serves Go's profiler under /debug/pprof/: on the internal listener,
	// and on the public one behind SigV4 (strata:GetProfile).
	EnablePprof bool `yaml:"enable_pprof"`
	// TLS serves the public listener over HTTPS when its certificate and key are set.
	TLS tlsutil.Config `yaml:"tls"`
}

// Defaults of Config.
const (
	DefaultInternalListen = "127.0.0.1:8081"
	DefaultMaxHeaderBytes = 64 << 10
)

// RegisterFlags registers the server flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "Address to serve HTTP on. Binding all interfaces (e.g. :8080) is an explicit choice; port 0 picks a free port.")
	f.StringVar(&c.InternalListen, "internal.listen", DefaultInternalListen, "Address of the internal listener: /metrics, /debug/pprof/ (with --server.enable-pprof) and the health endpoints, unauthenticated. Keep it on loopback or a private network. Empty means none: /metrics is then served only on --listen, behind SigV4 (strata:GetMetrics).")
	f.StringVar(&c.ExternalURL, "external-url", "", "URL clients reach Strata at, used in prometheusEndpoint. Empty means http://<listen address> (https:// with TLS).")
	f.DurationVar(&c.ReadHeaderTimeout, "server.read-header-timeout", 10*time.Second, "Time allowed to read a request's headers.")
	f.DurationVar(&c.IdleTimeout, "server.idle-timeout", 2*time.Minute, "How long an idle keep-alive connection stays open.")
	f.IntVar(&c.MaxHeaderBytes, "server.max-header-bytes", DefaultMaxHeaderBytes, "Largest request header section accepted, in bytes; larger requests get 431.")
	f.IntVar(&c.MaxConnections, "server.max-connections", 4096, "Most open connections on --listen; connections beyond it are closed at once. 0 means no cap.")
	f.DurationVar(&c.ShutdownTimeout, "server.shutdown-timeout", 30*time.Second, "How long in-flight requests may run after a stop signal.")
	f.BoolVar(&c.EnablePprof, "server.enable-pprof", false, "Serve Go's profiler under /debug/pprof/: on --internal.listen, and on --listen behind SigV4 (strata:GetProfile).")
	c.TLS.RegisterFlags(f, "tls.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	if c.InternalListen != "" {
		if _, _, err := net.SplitHostPort(c.InternalListen); err != nil {
			return fmt.Errorf("internal listen address %q: %w", c.InternalListen, err)
		}
	}
	if c.ShutdownTimeout < 0 || c.ReadHeaderTimeout < 0 || c.IdleTimeout < 0 {
		return errors.New("timeouts must not be negative")
	}
	if c.MaxHeaderBytes < 0 || c.MaxConnections < 0 {
		return errors.New("max_header_bytes and max_connections must not be negative")
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}

// Server routes requests to the components' handlers.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	mux      *http.ServeMux
	metrics  *metrics
	ready    func() error
	listener net.Listener
	tls      *tlsutil.Reloader // nil without TLS

	internal         net.Listener // nil without an internal listener
	internalMux      *http.ServeMux
	metricsHandler   http.Handler
	profilingHandler http.Handler // nil unless pprof is enabled
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

// New returns a server listening on cfg.Listen (and cfg.InternalListen). ready reports
// whether the components can serve; /-/ready answers 503 while it returns an error.
// gatherer serves /metrics.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer, ready func() error) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	var reloader *tlsutil.Reloader
	if cfg.TLS.Enabled() {
		var err error
		if reloader, err = tlsutil.NewReloader(cfg.TLS, "public", logger, reg); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	f := promauto.With(reg)
	if cfg.MaxConnections > 0 {
		l = newLimitListener(l, cfg.MaxConnections, f)
	}
	s := &Server{
		cfg:      cfg,
		logger:   logger,
		mux:      http.NewServeMux(),
		ready:    ready,
		listener: l,
		tls:      reloader,
		metrics: &metrics{
			requests: f.NewCounterVec(prometheus.CounterOpts{
				Name: "strata_http_requests_total",
				Help: "HTTP requests answered, by route (the operation name), method and status code.",
			}, []string{"route", "method", "status"}),
			duration: f.NewHistogramVec(prometheus.HistogramOpts{
				Name:                            "strata_http_request_duration_seconds",
				Help:                            "Time taken to answer HTTP requests, by route and method.",
				Buckets:                         []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
				NativeHistogramBucketFactor:     1.1,
				NativeHistogramMaxBucketNumber:  100,
				NativeHistogramMinResetDuration: time.Hour,
			}, []string{"route", "method"}),
			inflight: f.NewGauge(prometheus.GaugeOpts{
				Name: "strata_http_requests_in_flight",
				Help: "HTTP requests being answered.",
			}),
		},
	}
	healthy := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("Strata is Healthy.\n"))
	})
	s.Handle("healthy", "GET /-/healthy", healthy)
	s.Handle("ready", "GET /-/ready", http.HandlerFunc(s.serveReady))
	s.metricsHandler = promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true})
	if cfg.EnablePprof {
		pm := http.NewServeMux()
		pm.HandleFunc("GET /debug/pprof/", pprof.Index)
		pm.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		pm.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		s.profilingHandler = pm
	}
	if cfg.InternalListen != "" {
		il, err := net.Listen("tcp", cfg.InternalListen)
		if err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("listening on %s (internal): %w", cfg.InternalListen, err)
		}
		s.internal = il
		s.internalMux = http.NewServeMux()
		s.internalMux.Handle("GET /-/healthy", healthy)
		s.internalMux.HandleFunc("GET /-/ready", s.serveReady)
		s.internalMux.Handle("GET /metrics", s.metricsHandler)
		if s.profilingHandler != nil {
			s.internalMux.Handle("GET /debug/pprof/", s.profilingHandler)
		}
	}
	return s, nil
}

// MetricsHandler serves /metrics; mount it behind authentication on the public listener.
func (s *Server) MetricsHandler() http.Handler { return s.metricsHandler }

// ProfilingHandler serves /debug/pprof/..., nil unless pprof is enabled; mount it behind
// authentication on the public listener.
func (s *Server) ProfilingHandler() http.Handler { return s.profilingHandler }

// Close releases the listeners of a server that will not Run.
func (s *Server) Close() error {
	err := s.listener.Close()
	if s.internal != nil {
		err = errors.Join(err, s.internal.Close())
	}
	return err
}

// Addr is the address the server listens on (with the port chosen, when it was 0).
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// InternalAddr is the internal listener's address, nil when there is none.
func (s *Server) InternalAddr() net.Addr {
	if s.internal == nil {
		return nil
	}
	return s.internal.Addr()
}

// TLS reports whether the public listener serves HTTPS.
func (s *Server) TLS() bool { return s.tls != nil }

// ExternalURL is the configured external URL, or http(s)://<listen address>.
func (s *Server) ExternalURL() string {
	if s.cfg.ExternalURL != "" {
		return trimSlash(s.cfg.ExternalURL)
	}
	if s.tls != nil {
		return "https://" + s.listener.Addr().String()
	}
	return "http://" + s.listener.Addr().String()
}

func trimSlash(u string) string {
	for len(u) > 0 && u[len(u)-1] == '/' {
		u = u[:len(u)-1]
	}
	return u
}

// serveReady answers 503 with the reason while a component is not ready. The reasons
// are short and fixed (no paths, no workspace ids): anyone may ask.
func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.ready != nil {
		if err := s.ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("Strata is not ready: " + err.Error() + "\n"))
			return
		}
	}
	_, _ = w.Write([]byte("Strata is Ready.\n"))
}

// Handle mounts h at a ServeMux pattern ("METHOD /path/{var}"); route names it in metrics.
func (s *Server) Handle(route, pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.instrument(route, h))
}

// statusWriter records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer (flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.metrics.inflight.Inc()
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set(awsapi.RequestIDHeader, uuid.NewString())
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.logger.Error("panic serving request", "route", route, "panic", p)
				if sw.status == 0 {
					awsapi.WriteError(sw, awsapi.Internal())
				}
			}
			s.metrics.inflight.Dec()
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			method := methodLabel(r.Method)
			s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
			s.metrics.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}

// methodLabel bounds the method label of the request metrics: any method string is a
// valid HTTP method, and each would otherwise add series to /metrics forever.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// maxEchoedPath bounds the path an unknown-route error repeats back.
const maxEchoedPath = 256

// ServeHTTP routes a request; unknown routes get an AWS-shaped 404 naming the method and path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.instrument("unknown", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			method, path := r.Method, r.URL.EscapedPath()
			if len(method) > 16 {
				method = method[:16] + "..."
			}
			if len(path) > maxEchoedPath {
				path = path[:maxEchoedPath] + "..."
			}
			awsapi.WriteError(w, awsapi.UnknownOperation(method, path))
		})).ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Run serves until ctx is done, then stops accepting connections and lets in-flight
// requests finish within the shutdown timeout.
func (s *Server) Run(ctx context.Context) error {
	errLog := slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          errLog,
	}
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	if s.tls != nil {
		srv.TLSConfig = s.tls.ServerConfig()
		go func() { errc <- srv.ServeTLS(s.listener, "", "") }()
	} else {
		go func() { errc <- srv.Serve(s.listener) }()
	}
	s.logger.Info("server listening", "addr", s.listener.Addr().String(), "external_url", s.ExternalURL(), "tls", s.tls != nil)
	if s.internal != nil {
		isrv := &http.Server{
			Handler:           s.internalMux,
			ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
			IdleTimeout:       s.cfg.IdleTimeout,
			MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
			ErrorLog:          errLog,
		}
		servers = append(servers, isrv)
		go func() { errc <- isrv.Serve(s.internal) }()
		s.logger.Info("internal server listening", "addr", s.internal.Addr().String())
	}
	// The certificate reloader runs as long as the listener.
	tctx, stopReloads := context.WithCancel(ctx)
	reloadsDone := make(chan struct{})
	go func() {
		defer close(reloadsDone)
		if s.tls != nil {
			_ = s.tls.Run(tctx)
		}
	}()
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
			serveErr = errors.Join(serveErr, fmt.Errorf("shutting down HTTP: %w", err))
		}
	}
	stopReloads()
	<-reloadsDone
	return serveErr
}

// limitListener closes connections beyond a cap as soon as they are accepted: queueing
// them in the kernel's backlog would let a flood of idle connections delay everyone.
type limitListener struct {
	net.Listener
	max      int64
	open     atomic.Int64
	gauge    prometheus.Gauge
	rejected prometheus.Counter
}

func newLimitListener(l net.Listener, max int, f promauto.Factory) *limitListener {
	return &limitListener{
		Listener: l,
		max:      int64(max),
		gauge: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_http_connections",
			Help: "Open connections on the public listener.",
		}),
		rejected: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_http_connections_rejected_total",
			Help: "Connections closed at once because --server.max-connections were open.",
		}),
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.rejected.Inc()
			_ = c.Close()
			continue
		}
		l.gauge.Inc()
		return &countedConn{Conn: c, l: l}, nil
	}
}

// countedConn gives its slot back once, on the first Close.
type countedConn struct {
	net.Conn
	l      *limitListener
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
		c.l.gauge.Dec()
	}
	return c.Conn.Close()
}
