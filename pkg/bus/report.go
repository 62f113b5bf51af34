package bus

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of a worker's report on the event that ends its step (done or
// step.failed): who did the step, how long its job waited, how long it ran.
// The coordinator records them on the step's timeline row.
const (
	HeaderWorker    = "Backbeat-Worker"
	HeaderQueueWait = "Backbeat-Queue-Wait-Ms"
	HeaderRunTime   = "Backbeat-Run-Ms"
)

// Report is what a worker says of a step it did.
type Report struct {
	// Worker is the replica (Deps.Name, BACKBEAT_WORKER_NAME).
	Worker string
	// QueueWait is from the job being stored to the worker starting it.
	QueueWait time.Duration
	// RunTime is from the worker starting the job to its result.
	RunTime time.Duration
}

type reportKey struct{}

// WithReport returns a context whose publishes carry r as headers.
func WithReport(ctx context.Context, r Report) context.Context {
	return context.WithValue(ctx, reportKey{}, r)
}

// setReport adds the report ctx carries, if any, to a message's headers.
func setReport(ctx context.Context, h nats.Header) {
	r, ok := ctx.Value(reportKey{}).(Report)
	if !ok {
		return
	}
	if r.Worker != "" {
		h.Set(HeaderWorker, r.Worker)
	}
	h.Set(HeaderQueueWait, strconv.FormatInt(r.QueueWait.Milliseconds(), 10))
	h.Set(HeaderRunTime, strconv.FormatInt(r.RunTime.Milliseconds(), 10))
}

// ReportOf reads the report on the event being handled (the zero Report
// when it carries none: an older worker, or an event no worker sent).
// Malformed numbers read as zero.
func ReportOf(ctx context.Context) Report {
	msg, ok := ctx.Value(deliveryKey{}).(jetstream.Msg)
	if !ok || msg.Headers() == nil {
		return Report{}
	}
	h := msg.Headers()
	ms := func(k string) time.Duration {
		n, err := strconv.ParseInt(h.Get(k), 10, 64)
		if err != nil || n < 0 {
			return 0
		}
		return time.Duration(n) * time.Millisecond
	}
	w := h.Get(HeaderWorker)
	if len(w) > 128 {
		w = w[:128]
	}
	return Report{Worker: w, QueueWait: ms(HeaderQueueWait), RunTime: ms(HeaderRunTime)}
}
