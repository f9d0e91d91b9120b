// Package sigv4proxy is an AWS Signature Version 4 signing proxy: it takes
// unsigned HTTP requests (from Prometheus, Grafana, curl, ...), signs each one
// with credentials from the standard AWS chain, and forwards it to an
// upstream that requires SigV4, such as Strata or Amazon Managed Service for
// Prometheus. It plays the role of AWS's aws-sigv4-proxy and is
// `strata sigv4-proxy` on the command line.
//
// Start from [Config] and [New]: New loads credentials (the SDK's default
// chain, optionally a profile and an assumed role) and returns a [Proxy],
// an http.Handler; Go tests serve it in-process. [Main] is the command line
// (flags are [Config.RegisterFlags] plus --listen, --allow-non-loopback,
// --log.level, --log.format and --shutdown-timeout).
//
//	client ──► Proxy.ServeHTTP ──► GET /-/healthy? answered here
//	              │ path as sent (RequestURI) → canonical path (allow.go):
//	              │   "." ".." "//" resolved; encoded '/' or a '\' → 403
//	              │ allow-list (method, canonical path) refuses → 403,
//	              │   naming --allow-control-plane or --allow
//	              │ a query url.ParseQuery rejects → 400
//	              │ a slot of MaxConcurrent, else → 503 + Retry-After
//	              │ body: > MaxBodyBytes → 413; no room in
//	              │   MaxInFlightBodyBytes → 503 + Retry-After; slower than
//	              │   BodyTimeout → 408; else read, sign its SHA-256
//	              ▼
//	        httputil.ReverseProxy (hop-by-hop headers, 1xx, trailers, flushing
//	              │ of streamed responses, error → 502/504)
//	              │ rewrite: upstream scheme and host, upstream path prefix +
//	              │ canonical path, raw query; drop the client's Authorization
//	              │ and X-Amz-* signing headers
//	              ▼
//	        signingTransport.RoundTrip: credentials (cached, refreshed by the
//	              │ SDK) → v4.Signer.SignHTTP → put back the raw query the
//	              │ signer re-encoded → http.Transport
//	              ▼
//	          upstream
//
// Who may use it: anyone who reaches the proxy acts with its credentials.
// So it listens on loopback unless told otherwise (--allow-non-loopback,
// logged as a warning), and signs only what an allow-list admits: by default
// the data plane of AMP workspaces — POST /workspaces/{id}/api/v1/remote_write,
// GET and POST of the query API under /workspaces/{id}/api/v1/ (internal/query's
// routes), GET, POST and DELETE under /workspaces/{id}/alertmanager/api/v2/.
// The control plane (creating or deleting workspaces, policies, tags, ...) is
// forwarded only with Config.AllowControlPlane, other requests only when
// Config.Allow lists them. Everything else answers 403 in plain text, naming
// the flag, and reaches neither the signer nor the upstream. The allow-list
// sees the path as the upstream will: dot segments resolved and empty
// segments dropped, segments percent-decoded; and that canonical path is what
// is forwarded, so "/workspaces/ws-1/api/v1/../../../workspaces" is checked
// and sent as "/workspaces". A segment with an encoded '/' or a '\' is
// refused: servers disagree on where it ends.
//
// Exactness: the method and the query reach the upstream byte for byte as
// the client sent them; the path is the canonical one above, each segment
// escaped as the client escaped it (it goes out as an opaque URL so net/url
// does not re-encode it), joined to the upstream's path prefix. A query that
// Go's url.ParseQuery rejects (a ';', a bad escape) is answered 400: the SDK
// would sign what it could parse and the upstream would disagree. Headers are
// forwarded except hop-by-hop ones, Forwarded/X-Forwarded-*, Expect, and the
// client's Authorization and X-Amz-* signing headers (Date, Security-Token,
// Content-Sha256, ...), so a client cannot choose what the upstream verifies.
// The signature covers every forwarded header except those the SDK never
// signs (User-Agent, ...). Host is the upstream's.
//
// Bodies: every body is read into memory, within BodyTimeout, and its
// SHA-256 is signed in x-amz-content-sha256, which is what AMP expects and
// protects the body end to end; it goes out with a Content-Length, also when
// the client sent it chunked. A body larger than MaxBodyBytes (8 MiB by
// default, Strata's own limit and far above Prometheus' remote write
// batches) is refused with 413 before it is read (Content-Length) or as soon
// as it outgrows the limit (chunked); it is never streamed unsigned. Memory
// is bounded by MaxInFlightBodyBytes over all requests and MaxConcurrent
// requests: beyond either the proxy answers 503 with Retry-After at once
// rather than queueing, which Prometheus' remote write retries.
//
// What it deliberately does not do: presigned URLs, SigV4a, chunked
// (aws-chunked) payload signing, protocol upgrades (websockets), and its own
// /metrics.
package sigv4proxy
