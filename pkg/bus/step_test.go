package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// renderStep is a Step over RenderJobs whose work returns done, or err.
func renderStep(t *testing.T, tb *testBundle, runs *bus.Runs, work func(ctx context.Context, j *backbeatv1.RenderJob) (*backbeatv1.RenderDone, error)) *bus.Step[*backbeatv1.RenderJob, *backbeatv1.RenderDone] {
	t.Helper()
	return &bus.Step[*backbeatv1.RenderJob, *backbeatv1.RenderDone]{
		Name: bus.StepRender, Done: bus.KindRenderDone, Work: work,
		Deps: bus.Deps{Pub: tb.pub, Runs: runs, Log: zaptest.NewLogger(t), Name: "w1"},
	}
}

// activeRun makes a current run (attempt) of vid and subscribes to its
// render.done events.
func activeRun(t *testing.T, vid string, attempt int32) (*testBundle, *bus.Runs, string, *nats.Subscription) {
	t.Helper()
	tb := setup(t)
	ctx := context.Background()
	runs, err := bus.OpenRuns(ctx, tb.js)
	require.NoError(t, err)
	run := ids.NewRunID()
	require.NoError(t, runs.Set(ctx, vid, bus.RunState{RunID: run, Attempt: attempt, State: bus.RunActive}))
	sub, err := tb.nc.SubscribeSync(tb.subj.Event(vid, bus.KindRenderDone))
	require.NoError(t, err)
	return tb, runs, run, sub
}

// TestStepGuardsWorksAndPublishes: a current attempt is worked and its done
// event published under MsgID(run, step, attempt, kind); a bad id is
// permanent before any work; another attempt is not current.
func TestStepGuardsWorksAndPublishes(t *testing.T) {
	t.Parallel()
	tb, runs, run, sub := activeRun(t, "vs1", 2)
	ctx := context.Background()

	var worked int
	s := renderStep(t, tb, runs, func(ctx context.Context, j *backbeatv1.RenderJob) (*backbeatv1.RenderDone, error) {
		worked++
		require.NotNil(t, bus.Logger(ctx, nil), "the work's ctx carries a logger")
		return &backbeatv1.RenderDone{VideoId: j.VideoId, RunId: j.RunId, Attempt: j.Attempt}, nil
	})
	require.NoError(t, s.Handle(ctx, &backbeatv1.RenderJob{VideoId: "vs1", RunId: run, Attempt: 2}))
	msg, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, bus.MsgID(run, bus.StepRender, 2, bus.KindRenderDone), msg.Header.Get(nats.MsgIdHdr))
	var done backbeatv1.RenderDone
	require.NoError(t, proto.Unmarshal(msg.Data, &done))
	require.EqualValues(t, 2, done.Attempt)

	err = s.Handle(ctx, &backbeatv1.RenderJob{VideoId: "../x", RunId: run, Attempt: 2})
	require.True(t, bus.IsPermanent(err), "%v", err)
	err = s.Handle(ctx, &backbeatv1.RenderJob{VideoId: "vs1", RunId: "not a run", Attempt: 2})
	require.True(t, bus.IsPermanent(err), "%v", err)
	err = s.Handle(ctx, &backbeatv1.RenderJob{VideoId: "vs1", RunId: run, Attempt: 1})
	require.ErrorIs(t, err, bus.ErrNotCurrent)
	require.Equal(t, 1, worked, "only the current attempt is worked")

	s.Check = func(*backbeatv1.RenderJob) error { return errors.New("unknown template") }
	err = s.Handle(ctx, &backbeatv1.RenderJob{VideoId: "vs1", RunId: run, Attempt: 2})
	require.True(t, bus.IsPermanent(err), "%v", err)
	require.Contains(t, err.Error(), "unknown template")
	require.Equal(t, 1, worked)
}

// TestStepWorkCancelledBySupersedeIsNotCurrent: a run superseded during the
// work is dropped (ErrNotCurrent), and no done event is published.
func TestStepWorkCancelledBySupersedeIsNotCurrent(t *testing.T) {
	t.Parallel()
	tb, runs, run, sub := activeRun(t, "vs2", 1)
	s := renderStep(t, tb, runs, func(ctx context.Context, j *backbeatv1.RenderJob) (*backbeatv1.RenderDone, error) {
		require.NoError(t, runs.Set(context.Background(), "vs2", bus.RunState{RunID: run, Attempt: 1, State: bus.RunCancelled}))
		<-ctx.Done()
		return nil, ctx.Err()
	})
	err := s.Handle(context.Background(), &backbeatv1.RenderJob{VideoId: "vs2", RunId: run, Attempt: 1})
	require.ErrorIs(t, err, bus.ErrNotCurrent)
	_, err = sub.NextMsg(300 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "no done event for a dropped job")
}
