package bus

import (
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// bellGrace is how long a fetch woken by a bell waits for the job to show on
// its consumer: the server rings once the job is stored and tells the
// consumer microseconds later, longer on a loaded machine.
const bellGrace = 100 * time.Millisecond

// bell is the doorbell of a Run over several consumers: which consumers'
// bells rang since the last take, and one pending wake-up for the loop.
// Its methods accept a nil *bell (no doorbell): it never rings.
type bell struct {
	rung []atomic.Bool
	wake chan struct{}
	subs []*nats.Subscription
}

// ring marks consumer i and wakes the loop if it waits.
func (b *bell) ring(i int) {
	b.rung[i].Store(true)
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take returns which consumers rang since the last take and clears them
// (nil without a doorbell).
func (b *bell) take() []bool {
	if b == nil {
		return nil
	}
	out := make([]bool, len(b.rung))
	for i := range b.rung {
		out[i] = b.rung[i].Swap(false)
	}
	return out
}

// wakeups is the loop's wake-up channel; nil (never) without a doorbell.
func (b *bell) wakeups() <-chan struct{} {
	if b == nil {
		return nil
	}
	return b.wake
}

// stop unsubscribes from the bells.
func (b *bell) stop() {
	if b == nil {
		return
	}
	for _, s := range b.subs {
		_ = s.Unsubscribe()
	}
}

// doorbell subscribes to the bells of cons' filter subjects (Subjects.Bell).
// It returns nil, and Run polls every DefaultPollInterval, when the worker
// has no publisher, a consumer has no JOBS filter, or the server refuses the
// subscription (logged).
func (w *Worker[T]) doorbell(cons []jetstream.Consumer) *bell {
	if w.Pub == nil || w.Pub.JetStream() == nil {
		return nil
	}
	nc := w.Pub.JetStream().Conn()
	b := &bell{rung: make([]atomic.Bool, len(cons)), wake: make(chan struct{}, 1)}
	var subjects []string
	for i, c := range cons {
		cfg := c.CachedInfo().Config
		filters := cfg.FilterSubjects
		if cfg.FilterSubject != "" {
			filters = append(filters, cfg.FilterSubject)
		}
		if len(filters) == 0 {
			return nil
		}
		for _, f := range filters {
			subj, ok := w.Pub.Subjects().Bell(f)
			if !ok {
				return nil
			}
			s, err := nc.Subscribe(subj, func(*nats.Msg) { b.ring(i) })
			if err != nil {
				b.stop()
				w.log().Warn("doorbell unavailable: polling", zap.String("step", w.Step), zap.String("bell", subj),
					zap.Duration("every", DefaultPollInterval), zap.Error(err))
				return nil
			}
			b.subs = append(b.subs, s)
			subjects = append(subjects, subj)
		}
	}
	// A refused subscription is reported asynchronously: the round trip of
	// the flush brings the refusal back first.
	err := nc.FlushTimeout(5 * time.Second)
	if last := nc.LastError(); err == nil && last != nil && errors.Is(last, nats.ErrPermissionViolation) {
		for _, subj := range subjects {
			if strings.Contains(last.Error(), `"`+subj+`"`) {
				err = last
			}
		}
	}
	if err != nil {
		b.stop()
		w.log().Warn("doorbell unavailable: polling", zap.String("step", w.Step), zap.Strings("bells", subjects),
			zap.Duration("every", DefaultPollInterval), zap.Error(err))
		return nil
	}
	return b
}
