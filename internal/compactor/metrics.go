package compactor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	runs        prometheus.Counter
	runFailures prometheus.Counter
	lastSuccess prometheus.Gauge
	// lockedElsewhere counts workspaces skipped because another compactor held them.
	lockedElsewhere prometheus.Counter

	compactions        prometheus.Counter
	compactionFailures prometheus.Counter
	marked             *prometheus.CounterVec // by reason
	deleted            prometheus.Counter

	// Per workspace, as of the end of the last run that reached the workspace.
	bucketBytes  *prometheus.GaugeVec
	bucketBlocks *prometheus.GaugeVec
	oldestSample *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		runs: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_runs_total",
			Help: "Compaction runs started (each covers every workspace in the bucket).",
		}),
		runFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_run_failures_total",
			Help: "Compaction runs that failed for at least one workspace.",
		}),
		lockedElsewhere: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_workspaces_locked_elsewhere_total",
			Help: "Workspaces a run skipped because another compactor of the cluster was working them.",
		}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_compactor_last_successful_run_timestamp_seconds",
			Help: "When the last compaction run without failures ended.",
		}),
		compactions: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_compactions_total",
			Help: "Groups of blocks merged into one block.",
		}),
		compactionFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_compaction_failures_total",
			Help: "Groups of blocks whose merge failed; retried on the next run.",
		}),
		marked: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_compactor_blocks_marked_for_deletion_total",
			Help: "Blocks marked for deletion, by reason: compacted, redundant, retention, workspace-deleted.",
		}, []string{"reason"}),
		deleted: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_blocks_deleted_total",
			Help: "Marked blocks deleted from the bucket after the deletion delay.",
		}),
		bucketBytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_workspace_bucket_bytes",
			Help: "Bytes of the workspace's blocks in the bucket, including blocks marked for deletion.",
		}, []string{"workspace"}),
		bucketBlocks: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_workspace_bucket_blocks",
			Help: "The workspace's blocks in the bucket, including blocks marked for deletion.",
		}, []string{"workspace"}),
		oldestSample: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_workspace_oldest_sample_timestamp_seconds",
			Help: "Start of the oldest block of the workspace in the bucket not marked for deletion: how far back its data goes.",
		}, []string{"workspace"}),
	}
	for _, r := range []string{ReasonCompacted, ReasonRedundant, ReasonRetention, ReasonWorkspaceDeleted} {
		m.marked.WithLabelValues(r)
	}
	return m
}

// forget drops a workspace's series once its data is gone.
func (m *metrics) forget(workspace string) {
	m.bucketBytes.DeleteLabelValues(workspace)
	m.bucketBlocks.DeleteLabelValues(workspace)
	m.oldestSample.DeleteLabelValues(workspace)
}
