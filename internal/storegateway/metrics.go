package storegateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Reasons a local block is removed, the values of the reason label.
const (
	reasonDiskBudget = "disk_budget"
	reasonDeleted    = "deleted" // gone from the bucket, or its workspace deleted
)

type metrics struct {
	loads          prometheus.Counter
	loadFailures   prometheus.Counter
	removals       *prometheus.CounterVec
	syncDuration   prometheus.Histogram
	syncFailures   prometheus.Counter
	queryBlocks    prometheus.Histogram
	blocksTouched  prometheus.Counter
	blocksSkipped  prometheus.Counter
	diskBytes      prometheus.GaugeFunc
	blocksOnDisk   prometheus.GaugeFunc
	blocksOpen     prometheus.GaugeFunc
	diskBudget     prometheus.Gauge
	downloadedSize prometheus.Counter
	symbolBytes    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, sg *StoreGateway) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		loads: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_storegateway_blocks_loaded_total",
			Help: "Blocks downloaded from the bucket into the local cache.",
		}),
		loadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_storegateway_block_load_failures_total",
			Help: "Blocks that could not be downloaded or opened (blocks gone from the bucket excluded).",
		}),
		removals: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_storegateway_blocks_evicted_total",
			Help: "Blocks removed from the local cache, by reason: disk_budget (least recently used beyond the budget) or deleted (gone from the bucket, or workspace deleted).",
		}, []string{"reason"}),
		syncDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_storegateway_sync_duration_seconds",
			Help:    "Time to refresh one workspace's block list from the bucket.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		syncFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_storegateway_sync_failures_total",
			Help: "Refreshes of a workspace's block list that failed.",
		}),
		queryBlocks: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_storegateway_query_blocks",
			Help:    "Blocks read by one querier.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		blocksTouched: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_storegateway_query_blocks_touched_total",
			Help: "Blocks read by queriers, summed over queriers.",
		}),
		blocksSkipped: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_storegateway_query_blocks_gone_total",
			Help: "Blocks a query skipped because they left the bucket after the last listing.",
		}),
		downloadedSize: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_storegateway_downloaded_bytes_total",
			Help: "Bytes of blocks downloaded from the bucket.",
		}),
		symbolBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_storegateway_symbol_table_bytes",
			Help: "Memory held by the decoded symbol tables of open blocks (their strings, plus 16 bytes a symbol).",
		}),
		diskBudget: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_storegateway_disk_budget_bytes",
			Help: "The configured disk budget of the local block cache (0: none).",
		}),
		diskBytes: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_storegateway_disk_bytes",
			Help: "Bytes of blocks in the local cache.",
		}, func() float64 {
			sg.mu.Lock()
			defer sg.mu.Unlock()
			return float64(sg.diskBytes)
		}),
		blocksOnDisk: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_storegateway_blocks_on_disk",
			Help: "Blocks in the local cache.",
		}, func() float64 {
			sg.mu.Lock()
			defer sg.mu.Unlock()
			return float64(sg.blocksOnDisk)
		}),
		blocksOpen: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_storegateway_blocks_open",
			Help: "Blocks of the local cache that are open (memory-mapped).",
		}, func() float64 {
			sg.mu.Lock()
			defer sg.mu.Unlock()
			return float64(sg.blocksOpen)
		}),
	}
	for _, r := range []string{reasonDiskBudget, reasonDeleted} {
		m.removals.WithLabelValues(r)
	}
	return m
}
