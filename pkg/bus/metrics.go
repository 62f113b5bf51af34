package bus

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what workers do with messages, for /metrics: one counter per
// step and outcome (OutcomeAck, OutcomeRetry, OutcomeTerm, OutcomePanic, …),
// so that a handler that panics shows up as such and not as a plain failure.
type Metrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	wait     *prometheus.HistogramVec
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
	reg.MustRegister(m.handled, m.duration, m.wait)
	return m
}

func (m *Metrics) waited(step, consumer string, d time.Duration) {
	m.wait.WithLabelValues(step, consumer).Observe(d.Seconds())
}

func (m *Metrics) observe(step, outcome string, d time.Duration) {
	m.handled.WithLabelValues(step, outcome).Inc()
	m.duration.WithLabelValues(step).Observe(d.Seconds())
}
