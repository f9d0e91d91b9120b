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
// (flags are [Config.RegisterFlags] plus --listen, --log.level,
// --log.format and --shutdown-timeout).
//
//	client ──► Proxy.ServeHTTP ──► GET /-/healthy? answered here
//	              │ path as sent (RequestURI); a query url.ParseQuery
//	              │ rejects → 400
//	              │ body ≤ MaxBufferedBodyBytes: read it, sign its SHA-256
//	              │ body larger or of unknown length beyond that: stream it,
//	              │ sign UNSIGNED-PAYLOAD
//	              ▼
//	        httputil.ReverseProxy (hop-by-hop headers, 1xx, trailers, flushing
//	              │ of streamed responses, error → 502/504)
//	              │ rewrite: upstream scheme and host, upstream path prefix +
//	              │ raw path, raw query; drop the client's Authorization and
//	              │ X-Amz-* signing headers
//	              ▼
//	        signingTransport.RoundTrip: credentials (cached, refreshed by the
//	              │ SDK) → v4.Signer.SignHTTP → put back the raw query the
//	              │ signer re-encoded → http.Transport
//	              ▼
//	          upstream
//
// Exactness: the method, path and query reach the upstream byte for byte as
// the client sent them (the path goes out as an opaque URL so net/url does
// not re-encode it), joined to the upstream's path prefix; only a path that
// starts with "//" and has no prefix may be re-encoded by net/url. A query
// that Go's url.ParseQuery rejects (a ';', a bad escape) is answered 400:
// the SDK would sign what it could parse and the upstream would disagree.
// Headers are forwarded except hop-by-hop ones, Forwarded/X-Forwarded-*,
// Expect, and the client's Authorization and X-Amz-* signing headers
// (Date, Security-Token, Content-Sha256, ...), so a client cannot choose
// what the upstream verifies. The signature covers every forwarded header
// except those the SDK never signs (User-Agent, ...). Host is the
// upstream's.
//
// Bodies: a body up to MaxBufferedBodyBytes (8 MiB by default, larger than
// Prometheus' remote write batches) is read into memory and its SHA-256 is
// signed in x-amz-content-sha256, which is what AMP expects and protects the
// body end to end. A larger body, or one of unknown length that outgrows the
// limit, is streamed to the upstream as it arrives and signed with
// x-amz-content-sha256: UNSIGNED-PAYLOAD. Strata's verifier accepts that;
// AWS's own AMP may not, so when the upstream is AWS raise the limit above
// your largest request. Memory use is thus up to MaxBufferedBodyBytes per
// concurrent request.
//
// What it deliberately does not do: presigned URLs, SigV4a, chunked
// (aws-chunked) payload signing, protocol upgrades (websockets), and its own
// /metrics.
package sigv4proxy
