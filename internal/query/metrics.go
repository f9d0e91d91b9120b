package query

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	// samplesProcessed is AMP's billing unit, Query Samples Processed: the
	// totalQueryableSamples of each successful PromQL query.
	samplesProcessed *prometheus.CounterVec
	requests         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	rejected         *prometheus.CounterVec
	queued           *prometheus.GaugeVec
	// queueWait sums the time requests waited to be admitted, per workspace; with
	// requests_total it gives the mean wait.
	queueWait *prometheus.CounterVec
	split     *prometheus.CounterVec
	sharded   *prometheus.CounterVec
	shardRuns prometheus.Counter
	// The results cache (cache.go).
	cacheSteps     *prometheus.CounterVec
	cacheBytes     prometheus.Gauge
	cacheEvictions prometheus.Counter
	// cacheBackendErrors counts the remote backend's failures, each a miss.
	cacheBackendErrors *prometheus.CounterVec
	// The server-wide limits (serverlimits.go).
	inFlight        prometheus.Gauge
	samplesReserved prometheus.Gauge
	waiting         prometheus.Gauge
	serverLimit     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		samplesProcessed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_workspace_query_samples_processed_total",
			Help: "Query samples processed (AMP's billing unit: the totalQueryableSamples of successful PromQL queries), per workspace.",
		}, []string{"workspace"}),
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_workspace_query_requests_total",
			Help: "Query API requests per workspace, endpoint and outcome (success or the errorType answered).",
		}, []string{"workspace", "endpoint", "outcome"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "strata_query_request_duration_seconds",
			Help:                            "Time to answer a query API request, per endpoint.",
			Buckets:                         prometheus.ExponentialBuckets(0.001, 4, 9),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: 0,
		}, []string{"endpoint"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_workspace_query_rejected_total",
			Help: "Query requests refused by a query limit, per workspace and limit (max_queued, timeout, max_samples, max_series, time_range, max_samples_processed_error_threshold, and the server-wide max_concurrent_total and max_samples_total).",
		}, []string{"workspace", "limit"}),
		queued: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_workspace_queries_queued",
			Help: "Query requests waiting for a slot, per workspace.",
		}, []string{"workspace"}),
		queueWait: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_workspace_query_queue_wait_seconds_total",
			Help: "Time query requests waited for their workspace's slot and the server-wide limits before running, per workspace (divide by strata_workspace_query_requests_total for the mean).",
		}, []string{"workspace"}),
		cacheSteps: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_query_results_cache_steps_total",
			Help: "Steps of range queries by where their answer came from: hit (the results cache), miss (evaluated, then cached), uncacheable (evaluated: newer than --query.cache-max-freshness).",
		}, []string{"result"}),
		cacheBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_query_results_cache_bytes",
			Help: "Estimated size of the answers in the results cache (bounded by --query.results-cache-size).",
		}),
		cacheEvictions: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_query_results_cache_evictions_total",
			Help: "Cached extents evicted to keep the results cache within its size.",
		}),
		cacheBackendErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_query_results_cache_backend_errors_total",
			Help: "Failures of the results cache's backend (--query.results-cache.backend), each taken as a miss and the steps evaluated, by backend and reason: get and set (the server down, slow or refusing), corrupt (an item that does not decode), wrong_key (an item of another query), too_large (an extent over --query.results-cache.max-item-size, not stored).",
		}, []string{"backend", "reason"}),
		split: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_query_split_queries_total",
			Help: "Range queries cut into parts of their steps evaluated in parallel (--query.parallelism), by outcome: split (the parts answered) or whole (a part went over its share of the samples limit, so the query ran whole).",
		}, []string{"outcome"}),
		sharded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_query_sharded_queries_total",
			Help: "Queries whose aggregations were cut into --query.shards shards of their series evaluated in parallel, by outcome: sharded (the shards answered) or whole (a shard failed, went over its share of the samples limit or warned, so the query ran whole).",
		}, []string{"outcome"}),
		shardRuns: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_query_shard_evaluations_total",
			Help: "Partial aggregations evaluated for sharded queries, one per shard and partial (avg has two); divided by strata_query_sharded_queries_total, the shards per query.",
		}),
		inFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_query_in_flight_requests",
			Help: "Query requests reading data across all workspaces, against --query.max-concurrent-total.",
		}),
		samplesReserved: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_query_samples_reserved",
			Help: "Samples reserved by running PromQL queries (each its own samples limit), against --query.max-samples-total.",
		}),
		waiting: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_query_waiting_requests",
			Help: "Query requests waiting for the server-wide limits (--query.max-concurrent-total, --query.max-samples-total).",
		}),
		serverLimit: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_query_server_limit",
			Help: "The server-wide query limits by name (max_concurrent_total, max_samples_total); 0 means none.",
		}, []string{"limit"}),
	}
}
