package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/logging"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// maxDeliveries is the server's advisory for a message that reached its
// consumer's MaxDeliver without an ack.
type maxDeliveries struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// watchExhausted turns jobs that no worker ever acknowledged (it crashed or
// hung on every delivery, so the runner could not report a failure) into
// step.failed events, and removes them from the work queue.
func (s *Service) watchExhausted(ctx context.Context, js jetstream.JetStream) error {
	cons, err := bus.Consumer(ctx, js, bus.StreamAdvisories, bus.ConsumerExhausted)
	if err != nil {
		return err
	}
	jobs, err := js.Stream(ctx, bus.StreamJobs)
	if err != nil {
		return fmt.Errorf("jobs stream: %w", err)
	}
	for ctx.Err() == nil {
		msg, err := bus.FetchOne(ctx, cons, 5*time.Second)
		if err != nil {
			s.log.Warn("fetch advisory", zap.Error(err))
			time.Sleep(time.Second)
			continue
		}
		if msg == nil {
			continue
		}
		if err := s.exhausted(ctx, jobs, msg.Data()); err != nil {
			s.log.Warn("exhausted job not reported yet", zap.Error(err))
			_ = msg.NakWithDelay(5 * time.Second)
			continue
		}
		_ = msg.Ack()
	}
	return nil
}

// exhausted reports one exhausted job as a step failure. The report
// continues the job's trace: its span, "coordinator exhausted", is a child of
// the span that published the job (the job's traceparent).
func (s *Service) exhausted(ctx context.Context, jobs jetstream.Stream, advisory []byte) (err error) {
	var a maxDeliveries
	if err := json.Unmarshal(advisory, &a); err != nil || a.StreamSeq == 0 {
		s.log.Warn("unreadable max-deliveries advisory dropped", zap.ByteString("advisory", advisory))
		return nil
	}
	raw, err := jobs.GetMsg(ctx, a.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // acked or removed meanwhile
	}
	if err != nil {
		return fmt.Errorf("job %d: %w", a.StreamSeq, err)
	}
	ctx, span := s.tracer().Start(bus.Extract(ctx, raw.Header), "coordinator exhausted", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(bus.AttrDestination.String(raw.Subject)))
	defer func() { endSpan(span, err) }()
	log := s.log.With(logging.TraceFields(ctx)...)
	step, job := jobOf(s.subj, raw.Subject)
	sf := &backbeatv1.StepFailed{Step: step, VideoId: s.subj.VideoIDOf(raw.Subject),
		Reason: fmt.Sprintf("no worker of %s acknowledged the job after %d deliveries (crashed or hung)", a.Consumer, a.Deliveries)}
	if job != nil && bus.Decode(raw.Data, raw.Header.Get(bus.HeaderContentType), job) == nil {
		if m, ok := job.(interface{ GetRunId() string }); ok {
			sf.RunId = m.GetRunId()
		}
		if m, ok := job.(interface{ GetAttempt() int32 }); ok {
			sf.Attempt = m.GetAttempt()
		}
		if m, ok := job.(interface{ GetPool() string }); ok {
			sf.Pool = m.GetPool()
		}
	}
	if ids.ValidateVideoID(sf.VideoId) == nil {
		id := "exhausted:" + strconv.FormatUint(a.StreamSeq, 10)
		if err := s.pub.Publish(ctx, s.subj.Event(sf.VideoId, bus.KindStepFailed), sf, id); err != nil {
			return err
		}
	}
	span.SetAttributes(bus.MessageAttributes(sf)...)
	log.Warn("job exhausted its deliveries", zap.String("video_id", sf.VideoId), zap.String("run_id", sf.RunId),
		zap.String("step", step), zap.Uint64("deliveries", a.Deliveries))
	if err := jobs.DeleteMsg(ctx, a.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("remove exhausted job %d: %w", a.StreamSeq, err)
	}
	return nil
}

// jobOf names the step of a JOBS subject and returns an empty message of its type.
func jobOf(subj bus.Subjects, subject string) (string, proto.Message) {
	step := subj.JobStep(subject)
	switch step {
	case bus.StepAudio:
		return step, &backbeatv1.AudioJob{}
	case bus.StepRender:
		return step, &backbeatv1.RenderJob{}
	case bus.StepCDN:
		return step, &backbeatv1.CdnJob{}
	case bus.StepThumbnail:
		return step, &backbeatv1.ThumbnailJob{}
	case bus.StepNotify:
		return step, &backbeatv1.NotifyJob{}
	}
	return step, nil
}
