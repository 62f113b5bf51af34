package devstack

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/services/api"
)

// TestOneTracePerVideo: one trace, from the api's request to the last step,
// covers one video. Its spans come from the api, the coordinator, audio,
// the renderer, cdn and thumbnail, and form a tree under one root, the
// api's server span; no span of the video is in another trace; and every
// log line of the video carries that trace id.
func TestOneTracePerVideo(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	e := setup(t, func(o *Options) { o.Spans = rec })
	vid := e.vid("traced")
	e.submit(vid, 1.0, 3.0, "square")
	e.waitStatus(vid, "ready")
	e.wait(vid, time.Minute, "thumbnail and notify steps ended", func(v api.VideoView) bool {
		for _, n := range []string{"thumbnail", "notify"} {
			if s := stepsNamed(v, n); len(s) != 1 || s[0].EndedAt == nil {
				return false
			}
		}
		return true
	})

	// The create's trace: the api's publish of video.create names the video.
	var tid trace.TraceID
	require.Eventually(t, func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == "publish video.create" && attr(s, bus.AttrVideoID) == vid {
				tid = s.SpanContext().TraceID()
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the api's publish of video.create was recorded")

	// A span ends when its handler returns, a moment after what the test
	// waited for is in the database (the coordinator's thumbnail.done span
	// ends after the thumbnails' promotion): wait for the tree to be whole
	// (every parent recorded) and every expected span ended before judging.
	wantNames := []string{"POST /v1/videos", "coordinator video.create", "process audio", "coordinator audio.done",
		"process render", "coordinator render.done", "process cdn", "coordinator cdn.done", "process thumbnail",
		"coordinator thumbnail.done", "process notify"}
	var spans []sdktrace.ReadOnlySpan
	var problems []string
	services := map[string]int{}
	names := map[string]bool{}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		spans, problems = traceOf(rec.Ended(), tid)
		clear(services)
		clear(names)
		for _, s := range spans {
			services[service(s)]++
			names[s.Name()] = true
		}
		whole := len(problems) == 0
		for _, n := range wantNames {
			whole = whole && names[n]
		}
		if whole || time.Now().After(deadline) {
			break
		}
	}
	require.Empty(t, problems, "trace %s is not one tree", tid)
	for _, want := range []string{"api", "render-coordinator", "audio", "gpu-renderer", "cdn", "thumbnail"} {
		require.NotZero(t, services[want], "no span of %s in the video's trace (services: %v)", want, services)
	}
	for _, want := range wantNames {
		require.True(t, names[want], "no span %q in the video's trace (%v)", want, names)
	}
	for _, s := range rec.Ended() {
		if attr(s, bus.AttrVideoID) == vid {
			require.Equal(t, tid, s.SpanContext().TraceID(), "span %s of %s (%s) is in another trace", s.Name(), vid, service(s))
		}
	}
	e.requireOneTrace(vid, tid.String())
}

// traceOf returns the spans of trace tid and what keeps them from being one
// tree: a parent not recorded, or a root other than one api server span.
func traceOf(all []sdktrace.ReadOnlySpan, tid trace.TraceID) ([]sdktrace.ReadOnlySpan, []string) {
	var spans []sdktrace.ReadOnlySpan
	ids := map[trace.SpanID]bool{}
	for _, s := range all {
		if s.SpanContext().TraceID() == tid {
			spans = append(spans, s)
			ids[s.SpanContext().SpanID()] = true
		}
	}
	var problems []string
	roots := 0
	for _, s := range spans {
		switch {
		case !s.Parent().IsValid():
			roots++
			if service(s) != "api" || s.SpanKind() != trace.SpanKindServer {
				problems = append(problems, "root "+s.Name()+" of "+service(s)+" is not the api's request")
			}
		case !ids[s.Parent().SpanID()]:
			problems = append(problems, "parent of "+s.Name()+" ("+service(s)+") not in the trace")
		}
	}
	if roots != 1 {
		problems = append(problems, fmt.Sprintf("%d roots, want one", roots))
	}
	return spans, problems
}

func service(s sdktrace.ReadOnlySpan) string {
	for _, a := range s.Resource().Attributes() {
		if a.Key == "service.name" {
			return a.Value.AsString()
		}
	}
	return ""
}

// attr is the value of a span's attribute key, "" when it has none.
func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, a := range s.Attributes() {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return ""
}

// requireOneTrace holds every log line of vid to carry trace id tid: the
// video had one command (its create), so everything done for it is one
// trace.
func (e *e2e) requireOneTrace(vid, tid string) {
	e.t.Helper()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["video_id"] != vid {
			continue
		}
		n++
		require.Equal(e.t, tid, m[logging.KeyTraceID], "log line of %s not in its trace: %s", vid, line)
	}
	require.NotZero(e.t, n, "no log line names %s", vid)
}
