// Package query serves Prometheus' HTTP query API (/api/v1/query, query_range, series,
// labels, label values, metadata, query_exemplars, format_query, parse_query,
// status/buildinfo, status/tsdb) per workspace under /workspaces/{workspaceId}/, with
// AMP's query limits. Answers are byte-for-byte the JSON Prometheus writes for the same
// data, so Grafana, promtool and every Prometheus client work unchanged.
//
// Start from API: New takes the Config and the Deps (the storage behind a small
// Queryables interface, the workspace registry, optional per-workspace Limits), and
// Routes lists every endpoint with its method, ServeMux pattern and AMP IAM operation for
// the HTTP server to mount.
//
//	GET|POST /workspaces/{id}/api/v1/query_range
//	  │ wrap: parse form ─▶ workspace exists? (404) ─▶ Limits.QueryLimits(id)
//	  ▼
//	  parse params (400 bad_data) ─▶ deadline = min(limit timeout, ?timeout)
//	  ▼
//	  promql.Engine.NewRangeQuery(queryable bound to id) ─▶ time-range quota (422)
//	  ▼
//	  slot of workspace id: run, or queue (FIFO, bounded; full → 429)
//	  ▼
//	  server-wide limits (serverlimits.go): a slot of MaxConcurrentTotal and the query's
//	  samples limit reserved from MaxSamplesTotal, or wait (FIFO, ≤ MaxWaitTotal) → 503
//	  ▼
//	  Exec ──▶ Queryables.Querier(ctx, id, mint, maxt) ─▶ series budget (422)
//	  │        samples in memory ≤ MaxSamples (422), deadline (422), client gone (499)
//	  ▼
//	  AMP thresholds on samples processed (warning / 422), usage metric, slow-query log
//	  ▼
//	  JSON appended to a pooled buffer ─▶ gzip/deflate if accepted
//
// One PromQL engine serves every workspace: the engine holds no per-tenant state, and the
// workspace is bound by the storage.Queryable built for each request. A workspace whose
// sample limit is overridden gets an engine of its own, since the engine holds that limit.
//
// Limits and their answers (all in Prometheus' error shape):
//   - timeout (default 60s, waiting for a slot included): 422 timeout, "query timed out -
//     consider simplifying your query" — AMP's answer; Prometheus would answer 503;
//   - samples held in memory (default 50,000,000, the engine's limit): 422 execution;
//   - series read per request (default 1,000,000): 422 execution;
//   - instant queries reading 32 days or more, range queries reading more than 95 days:
//     422 execution, "the query time range exceeds the limit (...)";
//   - AMP's max_samples_processed_error_threshold parameter: 422 execution, not counted
//     as usage; max_samples_processed_warning_threshold: a warning in the answer;
//   - concurrent requests per workspace (default 20) with a queue (default 100): 429
//     unavailable when the queue is full;
//   - across workspaces, concurrent requests (default 64) and the samples that running
//     queries may hold together, each reserving its own samples limit (default
//     1,000,000,000): 503 unavailable with Retry-After after waiting (default 10s);
//   - a client that goes away cancels its query: 499 canceled.
package query
