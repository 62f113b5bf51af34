package logging

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Keys of the trace fields. A line carries them once at most: only the
// runner that starts a span for a request or a message (the api's wrap,
// bus.Worker, bus.Router, the coordinator's watchdog and sweeper) adds them,
// to the logger it hands down in the context.
const (
	KeyTraceID = "trace_id"
	KeySpanID  = "span_id"
)

// TraceFields are the trace_id and span_id of the span in ctx, or none when
// ctx carries no valid span (start-up, a loop that handles no message).
func TraceFields(ctx context.Context) []zap.Field {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	return []zap.Field{zap.String(KeyTraceID, sc.TraceID().String()), zap.String(KeySpanID, sc.SpanID().String())}
}

// TraceID is the trace id of the span in ctx, "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
