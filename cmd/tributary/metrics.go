package main

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
)

// metrics are the running node's Prometheus series. Counters and
// histograms of events (HTTP requests, sink batches) are recorded as they
// happen; everything else is read from the node's state at scrape time by
// nodeCollector, so a scrape costs no scan.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	batches  *prometheus.HistogramVec
}

func newMetrics(b *bridge) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_http_requests_total", Help: "HTTP API requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tributary_http_request_duration_seconds", Help: "HTTP API request duration, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route", "method"}),
		batches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tributary_sink_batch_duration_seconds", Help: "Time a sink took to apply one batch (with its checkpoint), failed attempts included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"sink"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.batches,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&nodeCollector{b: b})
	return m
}

// observeRequest is the API's Observe hook.
func (m *metrics) observeRequest(route, method string, code int, took time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route, method).Observe(took.Seconds())
}

// onBatch returns the runner's OnBatch hook for a sink.
func (m *metrics) onBatch(sink string) func(int, time.Duration, error) {
	h := m.batches.WithLabelValues(sink)
	return func(_ int, took time.Duration, _ error) { h.Observe(took.Seconds()) }
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var (
	descReplicaChanges   = prometheus.NewDesc("tributary_replica_changes", "Changes stored in the space (valid or not).", []string{"space"}, nil)
	descReplicaInvalid   = prometheus.NewDesc("tributary_replica_invalid_changes", "Changes stored without effect (unauthorized, breaking the schema, rolled back).", []string{"space"}, nil)
	descReplicaHeads     = prometheus.NewDesc("tributary_replica_heads", "Heads of the space's DAG.", []string{"space"}, nil)
	descReplicaOrphans   = prometheus.NewDesc("tributary_replica_orphans", "Changes held waiting for missing parents.", []string{"space"}, nil)
	descReplicaMembers   = prometheus.NewDesc("tributary_replica_members", "Current members of the space (revoked ones excluded).", []string{"space"}, nil)
	descContested        = prometheus.NewDesc("tributary_replica_contested_invites", "Invites used by several people, none admitted until an admin settles.", []string{"space"}, nil)
	descEffectHead       = prometheus.NewDesc("tributary_effect_log_last_lsn", "LSN of the newest effect in the space's effect log.", []string{"space"}, nil)
	descMeshPeers        = prometheus.NewDesc("tributary_mesh_peers", "Peers of the space reachable over a transport.", []string{"space", "transport"}, nil)
	descMeshReceived     = prometheus.NewDesc("tributary_mesh_changes_received_total", "Change envelopes received (push, fetch, peer push).", []string{"space", "transport"}, nil)
	descMeshApplied      = prometheus.NewDesc("tributary_mesh_changes_applied_total", "Changes received that were new and stored.", []string{"space", "transport"}, nil)
	descMeshRejected     = prometheus.NewDesc("tributary_mesh_changes_rejected_total", "Changes or pushes not taken, by reason.", []string{"space", "transport", "reason"}, nil)
	descMeshBytesSent    = prometheus.NewDesc("tributary_mesh_bytes_sent_total", "Reconciliation request and reply bytes sent.", []string{"space", "transport"}, nil)
	descMeshBytesRecv    = prometheus.NewDesc("tributary_mesh_bytes_received_total", "Reconciliation request and reply bytes received.", []string{"space", "transport"}, nil)
	descMeshRounds       = prometheus.NewDesc("tributary_mesh_reconcile_rounds_total", "Reconciliation round trips made.", []string{"space", "transport"}, nil)
	descMeshSyncs        = prometheus.NewDesc("tributary_mesh_syncs_total", "Reconciliations, by result (started, failed, served, refused).", []string{"space", "transport", "result"}, nil)
	descTransportUp      = prometheus.NewDesc("tributary_transport_up", "1 when the transport is connected and carrying changes.", []string{"transport"}, nil)
	descSinkUp           = prometheus.NewDesc("tributary_sink_up", "1 when the sink is running and its last batch succeeded.", []string{"sink", "space", "type"}, nil)
	descSinkCheckpoint   = prometheus.NewDesc("tributary_sink_checkpoint_lsn", "Last LSN the sink applied durably (its checkpoint in the target).", []string{"sink"}, nil)
	descSinkLag          = prometheus.NewDesc("tributary_sink_lag_effects", "Effects committed but not yet applied by the sink.", []string{"sink"}, nil)
	descSinkLagSeconds   = prometheus.NewDesc("tributary_sink_lag_seconds", "Age of the oldest effect the sink has not applied (0 when caught up).", []string{"sink"}, nil)
	descSinkApplied      = prometheus.NewDesc("tributary_sink_applied_total", "Effects the sink applied since the node started.", []string{"sink"}, nil)
	descSinkParked       = prometheus.NewDesc("tributary_sink_parked", "Effects the sink refused, parked with their reason (tributary sink parked NAME).", []string{"sink"}, nil)
	descSinkFailures     = prometheus.NewDesc("tributary_sink_failures_total", "Failed attempts to apply a batch since the node started.", []string{"sink"}, nil)
	descMeshAddrs        = prometheus.NewDesc("tributary_mesh_addr_records_total", "Members' signed address records received, by result (learned: newer and taken, refused: not a current member's, badly signed or malformed).", []string{"space", "transport", "result"}, nil)
	descReady            = prometheus.NewDesc("tributary_ready", "1 when /readyz reports ready.", nil, nil)
	meshRejectionReasons = map[string]string{
		"changes_rejected": "invalid", "push_rate_limited": "rate_limited", "push_queue_full": "queue_full",
		"orphan_limit": "orphan_limit", "messages_too_large": "too_large",
	}
	meshSyncResults = map[string]string{"syncs_started": "started", "syncs_failed": "failed", "syncs_served": "served", "syncs_refused": "refused"}
)

// nodeCollector reads the node's state at scrape time.
type nodeCollector struct{ b *bridge }

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReplicaChanges, descReplicaInvalid, descReplicaHeads, descReplicaOrphans,
		descReplicaMembers, descContested, descEffectHead, descMeshPeers, descMeshReceived, descMeshApplied, descMeshRejected,
		descMeshBytesSent, descMeshBytesRecv, descMeshRounds, descMeshSyncs, descMeshAddrs, descTransportUp, descSinkUp, descSinkCheckpoint,
		descSinkLag, descSinkLagSeconds, descSinkApplied, descSinkParked, descSinkFailures, descReady} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.b
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	b.reg.Each(func(id string, sp *node.Space) {
		st, err := sp.Replica.Status()
		if err == nil {
			gauge(descReplicaChanges, float64(st.Changes), id)
			gauge(descReplicaInvalid, float64(st.Invalid), id)
			gauge(descReplicaHeads, float64(len(st.Heads)), id)
			gauge(descReplicaOrphans, float64(st.Orphans), id)
			gauge(descContested, float64(st.Contested), id)
			members := 0
			for _, m := range st.Members {
				if !m.Revoked {
					members++
				}
			}
			gauge(descReplicaMembers, float64(members), id)
		}
		gauge(descEffectHead, float64(sp.Effects.LastLSN()), id)
		for _, ms := range b.Mesh(id) {
			gauge(descMeshPeers, float64(len(ms.Peers)), id, ms.Transport)
			counter(descMeshReceived, ms.Metrics["changes_received"], id, ms.Transport)
			counter(descMeshApplied, ms.Metrics["changes_applied"], id, ms.Transport)
			counter(descMeshBytesSent, ms.Metrics["bytes_sent"], id, ms.Transport)
			counter(descMeshBytesRecv, ms.Metrics["bytes_received"], id, ms.Transport)
			counter(descMeshRounds, ms.Metrics["sync_rounds"], id, ms.Transport)
			for key, reason := range meshRejectionReasons {
				counter(descMeshRejected, ms.Metrics[key], id, ms.Transport, reason)
			}
			for key, result := range meshSyncResults {
				counter(descMeshSyncs, ms.Metrics[key], id, ms.Transport, result)
			}
			counter(descMeshAddrs, ms.Metrics["addrs_learned"], id, ms.Transport, "learned")
			counter(descMeshAddrs, ms.Metrics["addrs_refused"], id, ms.Transport, "refused")
		}
	})
	for _, t := range b.transportHealth() {
		up := 0.0
		if t.err == nil {
			up = 1
		}
		gauge(descTransportUp, up, t.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range b.Sinks(ctx) {
		up := 0.0
		if s.State == sinkRunning && !s.Retrying && s.Fatal == "" {
			up = 1
		}
		gauge(descSinkUp, up, s.Name, s.Space, s.Type)
		gauge(descSinkCheckpoint, float64(s.Checkpoint), s.Name)
		gauge(descSinkLag, float64(s.Lag), s.Name)
		gauge(descSinkLagSeconds, b.lagSeconds(ctx, s.Space, s.Checkpoint, s.Lag), s.Name)
		counter(descSinkApplied, s.Applied, s.Name)
		gauge(descSinkParked, float64(s.Parked), s.Name)
		counter(descSinkFailures, s.Failures, s.Name)
	}
	ready := 0.0
	if len(b.readinessProblems(ctx)) == 0 {
		ready = 1
	}
	gauge(descReady, ready)
}

// lagSeconds is the age of the oldest effect a sink has not applied: the
// clock of the newest write behind the effect after its checkpoint.
func (b *bridge) lagSeconds(ctx context.Context, space string, checkpoint, lag uint64) float64 {
	if lag == 0 {
		return 0
	}
	sp, err := b.reg.Open(ctx, space)
	if err != nil {
		return 0
	}
	effs, err := sp.Effects.Read(ctx, checkpoint+1, 1)
	if err != nil || len(effs) == 0 {
		return 0
	}
	h, err := core.ParseHLC(effs[0].HLC)
	if err != nil {
		return 0
	}
	age := time.Since(time.UnixMilli(int64(h.Wall))).Seconds()
	return max(age, 0)
}
