package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// chainMetrics are the chain's Prometheus metrics, in the daemon's own
// registry (never the global one: tests run several daemons in a
// process).
type chainMetrics struct {
	registry      *prometheus.Registry
	height        prometheus.Gauge
	viewChanges   prometheus.Counter
	commitLatency prometheus.Histogram
	mempool       prometheus.Gauge
	committedTxs  prometheus.Counter
	syncedBlocks  prometheus.Counter
	dropped       prometheus.Counter
	// forwardDropped counts forwarded transactions dropped unverified.
	forwardDropped prometheus.Counter
	walSync        prometheus.Histogram
}

func newChainMetrics(c *chainNode) *chainMetrics {
	m := &chainMetrics{
		registry: prometheus.NewRegistry(),
		height: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditnet_chain_height", Help: "Height of the last committed block.",
		}),
		viewChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditnet_chain_view_changes_total", Help: "Views this node moved past.",
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auditnet_chain_commit_latency_seconds",
			Help:    "Time from a transaction's submission to this validator until its block committed here.",
			Buckets: []float64{.005, .01, .025, .05, .1, .2, .3, .5, 1, 2, 5, 10},
		}),
		mempool: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditnet_chain_mempool_txs", Help: "Transactions waiting for a block.",
		}),
		committedTxs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditnet_chain_committed_txs_total", Help: "Transactions committed since the node started.",
		}),
		syncedBlocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditnet_chain_synced_blocks_total", Help: "Blocks fetched from peers over /auditnet/sync/1.",
		}),
		forwardDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditnet_chain_forwarded_txs_dropped_total",
			Help: "Transactions other validators forwarded that this one dropped unverified because it was saturated (its verifier queue full); the sender forwards them again before it suspects the leader.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditnet_chain_dropped_frames_total", Help: "Consensus frames dropped because a peer's send queue was full.",
		}),
		walSync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auditnet_chain_wal_fsync_seconds", Help: "Duration of the WAL's fsyncs.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
	}
	lag := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "auditnet_chain_lag_blocks", Help: "Blocks between the highest height validators have shown and this node's.",
	}, func() float64 {
		if st := c.status.Load(); st != nil {
			return float64(st.Lag)
		}
		return 0
	})
	view := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "auditnet_chain_view", Help: "The current consensus view.",
	}, func() float64 {
		if st := c.status.Load(); st != nil {
			return float64(st.View)
		}
		return 0
	})
	m.registry.MustRegister(m.height, m.viewChanges, m.commitLatency, m.mempool, m.committedTxs,
		m.syncedBlocks, m.dropped, m.forwardDropped, m.walSync, lag, view,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
