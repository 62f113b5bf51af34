// Package tracing builds the OpenTelemetry tracer providers of Backbeat's
// processes. Every process has an SDK provider, so that every request and
// message has a trace id for its spans and its log lines (trace_id,
// span_id); spans leave the process only when the standard OTLP environment
// names a collector (Exporting): then they are batched and sent over
// OTLP/HTTP. pkg/bus carries the trace from hop to hop in the `traceparent`
// header (the W3C propagator), so one trace follows a video from the api's
// create through every step.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"
)

// The environment variables that turn OTLP export on, the standard ones of
// the OpenTelemetry SDKs. Either names the collector (for example
// http://otel-collector:4318); the rest of the OTLP environment
// (OTEL_EXPORTER_OTLP_HEADERS, …_TIMEOUT, …_INSECURE, OTEL_TRACES_SAMPLER)
// is read by the exporter and the SDK as documented there.
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// Exporting reports whether the environment names an OTLP collector for
// traces.
func Exporting() bool {
	return os.Getenv(EnvEndpoint) != "" || os.Getenv(EnvTracesEndpoint) != ""
}

// EnvProcessor is the span processor the environment asks for: a batching
// OTLP/HTTP exporter when Exporting, nil (spans are made, not exported)
// otherwise.
func EnvProcessor(ctx context.Context) (sdktrace.SpanProcessor, error) {
	if !Exporting() {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp/http exporter: %w", err)
	}
	return sdktrace.NewBatchSpanProcessor(exp), nil
}

// Providers are the tracer providers of one process, one per service it
// runs (a service's main has one; `backbeat dev` one for each service), each
// naming its service in its resource (service.name) and all feeding the
// same span processor. Shutdown flushes that processor once.
type Providers struct {
	proc sdktrace.SpanProcessor

	mu  sync.Mutex
	all []*sdktrace.TracerProvider
}

// NewProviders returns providers that hand their ended spans to proc: the
// environment's (EnvProcessor), or a test's (tracetest.NewSpanRecorder, an
// in-memory exporter in sdktrace.NewSimpleSpanProcessor). A nil proc makes
// spans, with their ids, that go nowhere.
func NewProviders(proc sdktrace.SpanProcessor) *Providers {
	return &Providers{proc: proc}
}

// For returns a new provider for service.
func (p *Providers) For(service string) *sdktrace.TracerProvider {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", service)))
	if err != nil {
		// Default's schema and a schemaless resource always merge; keep
		// the service name whatever happens.
		res = resource.NewSchemaless(attribute.String("service.name", service))
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if p.proc != nil {
		opts = append(opts, sdktrace.WithSpanProcessor(shared{p.proc}))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	p.mu.Lock()
	p.all = append(p.all, tp)
	p.mu.Unlock()
	return tp
}

// Shutdown ends every provider and then flushes and stops the processor
// (its exporter sends what it still holds), within ctx.
func (p *Providers) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	all := p.all
	p.all = nil
	p.mu.Unlock()
	var errs []error
	for _, tp := range all {
		if err := tp.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if p.proc != nil {
		if err := p.proc.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// shared is a processor several providers feed: a provider's Shutdown only
// flushes it, Providers.Shutdown stops it once.
type shared struct{ sdktrace.SpanProcessor }

// Shutdown flushes instead of stopping the processor other providers use.
func (s shared) Shutdown(ctx context.Context) error { return s.ForceFlush(ctx) }

// Setup is the tracing of a process: providers on the environment's
// processor (EnvProcessor), export errors logged to log as JSON lines
// (OpenTelemetry would print plain text to stderr), and the provider of
// service, which it also makes the global one. Call Providers.Shutdown on
// exit.
func Setup(ctx context.Context, service string, log *zap.Logger) (*Providers, *sdktrace.TracerProvider, error) {
	proc, err := EnvProcessor(ctx)
	if err != nil {
		return nil, nil, err
	}
	LogErrors(log)
	ps := NewProviders(proc)
	tp := ps.For(service)
	otel.SetTracerProvider(tp)
	if proc != nil {
		log.Info("traces exported over OTLP/HTTP")
	}
	return ps, tp, nil
}

// LogErrors sends OpenTelemetry's own errors (an export that failed) to log,
// so that they are JSON lines like every other.
func LogErrors(log *zap.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing error", zap.Error(err))
	}))
}
