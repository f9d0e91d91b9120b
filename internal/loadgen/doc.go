// Package loadgen is a Prometheus remote write load generator with a
// realistic workload, for benchmarks and crash tests of Strata (and of
// anything else that takes remote write). It is `strata loadgen` on the
// command line.
//
// Start from [Config] and [Run]: Run sends the workload for Config.Duration
// and returns a [Report]; Go tests call it in-process. [Main] is the command
// line (flags are [Config.RegisterFlags] plus --output).
//
// The workload (workload.go) is node-exporter-like: instances
// host-NNNN:9100 of 103 series each (node_cpu_seconds_total{cpu,mode},
// node_memory_*_bytes, node_network_*_total{device},
// node_filesystem_*{device,fstype,mountpoint}, node_disk_*_total{device},
// ...), 8 to 11 labels per series with job, instance, az, nodepool and the
// external-like cluster, env and loadgen_seed. It is a deterministic core:
// the series at a step and their values are a pure function of the seed and
// the step, so the verifier can replay what was sent instead of storing it.
// Counters only grow, gauges random-walk, constants stay; churn rotates
// whole instances out (with staleness markers, as Prometheus sends) and new
// ones in; timestamps are multiples of the scrape interval.
//
// Sending (run.go): Concurrency workers each own the series that hash to
// them and have one request in flight, so a series' samples arrive in
// timestamp order, as with Prometheus' shards. Backfill is sent as fast as
// the server takes it, workers kept within five minutes of each other;
// then each step is sent when the clock reaches it. Requests are encoded by
// hand (encode.go) into reused buffers, snappy-compressed, optionally SigV4
// signed, and retried with doubling backoff on 429, 5xx and transport
// errors; other statuses drop the batch. Every 2xx records the batch's
// steps per series as ranges (ranges.go), a few bytes per series.
//
// Verification (verify.go) reads the acknowledged samples back with one
// range-selector instant query per instance and time window and compares
// timestamp and value exactly.
//
// What it deliberately does not do: native histograms, exemplars, v1
// metadata requests, and out-of-order or duplicate samples; spreading one
// interval's samples over the interval (each step is sent at its timestamp,
// a burst, as when all targets are scraped in phase).
package loadgen
