package bus

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what workers do with messages, for /metrics: one counter per
// step and outcome (OutcomeAck, OutcomeRetry, OutcomeTerm, OutcomePanic, …),
// so that a handler that panics shows up as such and not as a plain failure.
//
// It also holds the few pipeline counters operators alert on that are not
// about one message: stalled runs and webhook deliveries (the coordinator),
// the edge's cache (the cdn) and NVENC fallbacks (the renderer). Every method accepts a nil *Metrics and counts nothing.
type Metrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	wait     *prometheus.HistogramVec
	stalled  *prometheus.CounterVec
	edge     *prometheus.CounterVec
	nvenc    *prometheus.CounterVec
	webhooks *prometheus.CounterVec
}

// NewMetrics registers the worker metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backbeat_jobs_handled_total", Help: "Messages handled, by step and outcome.",
		}, []string{"step", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backbeat_job_duration_seconds", Help: "Handler time, by step.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
		}, []string{"step"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backbeat_job_queue_wait_seconds",
			Help: "Time from a message being stored to a worker starting on it, by step and consumer (a render consumer names its pool and priority).",
			// 0.5 ms to 35 min: a pickup takes milliseconds, a queue behind busy renderers minutes.
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 12),
		}, []string{"step", "consumer"}),
	}
	m.stalled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backbeat_runs_stalled_total",
		Help: "Runs the coordinator's watchdog marked stalled, by stage and pool.",
	}, []string{"stage", "pool"})
	m.edge = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backbeat_edge_requests_total",
		Help: "Objects the edge served, by cache: hit (from its disk cache) or miss (from storage).",
	}, []string{"cache"})
	m.nvenc = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backbeat_nvenc_fallbacks_total",
		Help: "Renders that asked for NVENC and ran on libx264 because NVENC could not be opened, by pool.",
	}, []string{"pool"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "backbeat_webhook_deliveries_total",
		Help: "Notification webhooks the coordinator posted, by outcome: ok (2xx) or failed (no answer or not 2xx; retried).",
	}, []string{"outcome"})
	reg.MustRegister(m.handled, m.duration, m.wait, m.stalled, m.edge, m.nvenc, m.webhooks)
	return m
}

// NVENCFallback counts a render of pool that asked for NVENC and ran on
// libx264.
func (m *Metrics) NVENCFallback(pool string) {
	if m != nil {
		m.nvenc.WithLabelValues(pool).Inc()
	}
}

// WebhookDelivered counts a notification webhook post: ok or not.
func (m *Metrics) WebhookDelivered(ok bool) {
	if m == nil {
		return
	}
	outcome := "failed"
	if ok {
		outcome = "ok"
	}
	m.webhooks.WithLabelValues(outcome).Inc()
}

// Stalled counts a run the watchdog marked stalled in stage on pool ("" for
// a stage without a pool).
func (m *Metrics) Stalled(stage, pool string) {
	if m != nil {
		m.stalled.WithLabelValues(stage, pool).Inc()
	}
}

// EdgeServed counts an object the edge served from its cache (hit) or from
// storage.
func (m *Metrics) EdgeServed(hit bool) {
	if m == nil {
		return
	}
	cache := "miss"
	if hit {
		cache = "hit"
	}
	m.edge.WithLabelValues(cache).Inc()
}

func (m *Metrics) waited(step, consumer string, d time.Duration) {
	m.wait.WithLabelValues(step, consumer).Observe(d.Seconds())
}

func (m *Metrics) observe(step, outcome string, d time.Duration) {
	m.handled.WithLabelValues(step, outcome).Inc()
	m.duration.WithLabelValues(step).Observe(d.Seconds())
}
