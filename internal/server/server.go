// Package server is Strata's HTTP edge: one listener, one router, the operational
// endpoints (/-/healthy, /-/ready, /metrics) and the instrumentation every route shares.
// Start from New; components hand it their routes with Handle.
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
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratametrics/strata/internal/awsapi"
)

// Config configures the HTTP server.
type Config struct {
	// Listen is the address to listen on; port 0 picks a free port.
	Listen string `yaml:"listen"`
	// ExternalURL is the URL clients reach this server at. Empty means http://<listen address>.
	ExternalURL       string        `yaml:"external_url"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout bounds how long in-flight requests may finish after a stop signal.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// EnablePprof serves Go's profiler under /debug/pprof/, unauthenticated.
	EnablePprof bool `yaml:"enable_pprof"`
}

// RegisterFlags registers the server flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "Address to serve HTTP on. Binding all interfaces (e.g. :8080) is an explicit choice; port 0 picks a free port.")
	f.StringVar(&c.ExternalURL, "external-url", "", "URL clients reach Strata at, used in prometheusEndpoint. Empty means http://<listen address>.")
	f.DurationVar(&c.ReadHeaderTimeout, "server.read-header-timeout", 10*time.Second, "Time allowed to read a request's headers.")
	f.DurationVar(&c.IdleTimeout, "server.idle-timeout", 2*time.Minute, "How long an idle keep-alive connection stays open.")
	f.DurationVar(&c.ShutdownTimeout, "server.shutdown-timeout", 30*time.Second, "How long in-flight requests may run after a stop signal.")
	f.BoolVar(&c.EnablePprof, "server.enable-pprof", false, "Serve Go's profiler under /debug/pprof/ (unauthenticated: only on trusted listeners).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	if c.ShutdownTimeout < 0 || c.ReadHeaderTimeout < 0 || c.IdleTimeout < 0 {
		return errors.New("timeouts must not be negative")
	}
	return nil
}

// Server routes requests to the components' handlers.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	mux      *http.ServeMux
	metrics  *metrics
	ready    func() bool
	listener net.Listener
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

// New returns a server listening on cfg.Listen. ready reports whether the components can
// serve; /-/ready answers 503 until it returns true. gatherer serves /metrics.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer, ready func() bool) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	f := promauto.With(reg)
	s := &Server{
		cfg:      cfg,
		logger:   logger,
		mux:      http.NewServeMux(),
		ready:    ready,
		listener: l,
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
	s.Handle("healthy", "GET /-/healthy", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("Strata is Healthy.\n"))
	}))
	s.Handle("ready", "GET /-/ready", http.HandlerFunc(s.serveReady))
	s.Handle("metrics", "GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	if cfg.EnablePprof {
		s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return s, nil
}

// Close releases the listener of a server that will not Run.
func (s *Server) Close() error { return s.listener.Close() }

// Addr is the address the server listens on (with the port chosen, when it was 0).
func (s *Server) Addr() net.Addr { return s.listener.Addr() }

// ExternalURL is the configured external URL, or http://<listen address>.
func (s *Server) ExternalURL() string {
	if s.cfg.ExternalURL != "" {
		return trimSlash(s.cfg.ExternalURL)
	}
	return "http://" + s.listener.Addr().String()
}

func trimSlash(u string) string {
	for len(u) > 0 && u[len(u)-1] == '/' {
		u = u[:len(u)-1]
	}
	return u
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.ready != nil && !s.ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("Strata is not ready.\n"))
		return
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
			s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
			s.metrics.duration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}

// ServeHTTP routes a request; unknown routes get an AWS-shaped 404 naming the method and path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.instrument("unknown", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			awsapi.WriteError(w, awsapi.UnknownOperation(r.Method, r.URL.EscapedPath()))
		})).ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Run serves until ctx is done, then stops accepting connections and lets in-flight
// requests finish within the shutdown timeout.
func (s *Server) Run(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.listener) }()
	s.logger.Info("server listening", "addr", s.listener.Addr().String(), "external_url", s.ExternalURL())
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutting down HTTP: %w", err)
	}
	return nil
}
