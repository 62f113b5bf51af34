package tracing_test

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/tracing"
)

// collector is an OTLP/HTTP trace receiver: what a collector gets.
type collector struct {
	mu    sync.Mutex
	got   []*coltracepb.ExportTraceServiceRequest
	paths []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.got = append(c.got, &req)
	c.paths = append(c.paths, r.URL.Path)
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

// TestSpansAreExportedOverOTLPWhenConfigured: with OTEL_EXPORTER_OTLP_ENDPOINT
// set, a span ended in a service reaches the collector over OTLP/HTTP on
// shutdown, named, with its attributes and its service.
func TestSpansAreExportedOverOTLPWhenConfigured(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	t.Setenv(tracing.EnvEndpoint, srv.URL)
	require.True(t, tracing.Exporting())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ps, tp, err := tracing.Setup(ctx, "audio", zaptest.NewLogger(t))
	require.NoError(t, err)
	_, span := tp.Tracer("test").Start(ctx, "process audio")
	span.SetAttributes(attribute.String("backbeat.video_id", "v1"))
	traceID := span.SpanContext().TraceID()
	span.End()
	require.NoError(t, ps.Shutdown(ctx))

	c.mu.Lock()
	defer c.mu.Unlock()
	require.NotEmpty(t, c.got, "the collector received nothing")
	require.Equal(t, "/v1/traces", c.paths[0])
	var found bool
	for _, req := range c.got {
		for _, rs := range req.GetResourceSpans() {
			var service string
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					if sp.GetName() != "process audio" {
						continue
					}
					found = true
					require.Equal(t, "audio", service)
					require.Equal(t, traceID[:], sp.GetTraceId())
					require.Equal(t, "backbeat.video_id", sp.GetAttributes()[0].GetKey())
				}
			}
		}
	}
	require.True(t, found, "span \"process audio\" not exported")
}

// TestNoExportWithoutAnEndpoint: with no OTLP endpoint nothing is exported,
// and spans still carry valid trace ids (for the log lines).
func TestNoExportWithoutAnEndpoint(t *testing.T) {
	t.Setenv(tracing.EnvEndpoint, "")
	t.Setenv(tracing.EnvTracesEndpoint, "")
	require.False(t, tracing.Exporting())
	proc, err := tracing.EnvProcessor(context.Background())
	require.NoError(t, err)
	require.Nil(t, proc)
	ps, tp, err := tracing.Setup(context.Background(), "cdn", zaptest.NewLogger(t))
	require.NoError(t, err)
	_, span := tp.Tracer("test").Start(context.Background(), "process cdn")
	require.True(t, span.SpanContext().TraceID().IsValid())
	span.End()
	require.NoError(t, ps.Shutdown(context.Background()))
}
