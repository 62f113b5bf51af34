package coordinator

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/alert"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/pkg/store"
)

// Work no message caused (the watchdog's stalls and queue moves, the
// sweeper's re-emitted effects) starts a new trace: a root span per run it
// acts on, "coordinator watchdog" or "coordinator sweep", whose logger names
// the trigger. The jobs it publishes continue that trace, so a stalled
// run's recovery or a moved render is found from the watchdog's trace id.
// Nothing links it to the run's earlier trace: the database keeps no trace
// context. An exhausted job (no worker acked it) is the exception: its
// report continues the job's own trace, read from the job's traceparent.
const (
	TriggerWatchdog = "watchdog"
	TriggerSweep    = "sweep"
)

// tracer makes the coordinator's own spans with its publisher's provider
// (the global one on the simulation's bus, which makes none).
func (s *Service) tracer() trace.Tracer { return bus.Tracer(s.busPublisher()) }

// startRoot starts the root span of trigger's work on run, and returns ctx
// with it and with a logger that carries its trace_id, span_id and trigger
// (not the video: the lines that name it add it).
func (s *Service) startRoot(ctx context.Context, trigger string, run store.Run) (context.Context, trace.Span) {
	return s.startRootOf(ctx, trigger, run.VideoID, run.ID)
}

// startRootOf is startRoot for a run known by its ids.
func (s *Service) startRootOf(ctx context.Context, trigger, videoID, runID string) (context.Context, trace.Span) {
	ctx, span := s.tracer().Start(ctx, "coordinator "+trigger, trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(bus.AttrVideoID.String(videoID), bus.AttrRunID.String(runID), bus.AttrStep.String(trigger)))
	log := s.log.With(append([]zap.Field{zap.String("trigger", trigger)}, logging.TraceFields(ctx)...)...)
	return bus.WithLogger(ctx, log), span
}

// endSpan marks span failed with err, when there is one, and ends it.
func endSpan(span trace.Span, err error) {
	bus.Fail(span, err)
	span.End()
}

// sendAlert sends a with the trace of ctx, for the operator to open.
func (s *Service) sendAlert(ctx context.Context, a alert.Alert) {
	a.TraceID = logging.TraceID(ctx)
	s.alert.Send(a)
}
