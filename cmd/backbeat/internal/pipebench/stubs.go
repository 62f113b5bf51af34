package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
	"github.com/backbeat/backbeat/services/cdn"
)

// workerConn is what one stub worker runs on: its NATS user's JetStream, a
// publisher and the runs bucket, as boot.Process.Deps gives a service.
type workerConn struct {
	js   jetstream.JetStream
	pub  *bus.Publisher
	runs *bus.Runs
}

// stubs are the four job services with Work that does no media work: each
// writes placeholder objects at the keys the real service writes and returns
// the done event with the fields the coordinator checks, through a real
// bus.Step (guard, publish, ack policy), so what is measured around them is
// the pipeline's own. Each Work records its duration (the worker's busy
// time) and the job's queue wait (bus.QueueWait) in the trace.
type stubs struct {
	blob  blob.Store
	trace *trace
	pools []string
	log   *zap.Logger
}

// placeholder is the body of every object a stub writes.
var placeholder = []byte("pipebench placeholder\n")

// put writes a placeholder object.
func (s *stubs) put(ctx context.Context, key, contentType string) error {
	if _, err := s.blob.Put(ctx, key, bytes.NewReader(placeholder), int64(len(placeholder)), contentType); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// timed wraps a Work so that it records the job's pickup and its own busy
// time under step.
func timed[J bus.Job, D any](t *trace, step string, work func(context.Context, J) (D, error)) func(context.Context, J) (D, error) {
	return func(ctx context.Context, job J) (D, error) {
		pickup := bus.QueueWait(ctx)
		start := time.Now()
		done, err := work(ctx, job)
		if err == nil {
			t.worked(job.GetVideoId(), step, pickup, time.Since(start))
		}
		return done, err
	}
}

func (s *stubs) audio(ctx context.Context, job *backbeatv1.AudioJob) (*backbeatv1.AudioDone, error) {
	vid, run := job.GetVideoId(), job.GetRunId()
	done := &backbeatv1.AudioDone{VideoId: vid, RunId: run,
		AudioKey: keys.RunKey(vid, run, keys.ObjectAudio), Mp3Key: keys.RunKey(vid, run, keys.ObjectMP3),
		AnalysisKey:     keys.RunKey(vid, run, keys.ObjectAnalysis),
		DurationSeconds: job.GetEndSeconds() - job.GetStartSeconds(), SourceDurationSeconds: job.GetEndSeconds()}
	for _, o := range []struct{ key, ct string }{{done.AudioKey, "audio/mp4"}, {done.Mp3Key, "audio/mpeg"}, {done.AnalysisKey, "application/json"}} {
		if err := s.put(ctx, o.key, o.ct); err != nil {
			return nil, err
		}
	}
	return done, nil
}

// render writes the video and, like the real renderer, publishes progress at
// 0 % when it starts (the claim the coordinator's queue watchdog reads) and
// at 100 % when it is done.
func (s *stubs) render(pool, worker string, pub *bus.Publisher) func(context.Context, *backbeatv1.RenderJob) (*backbeatv1.RenderDone, error) {
	return func(ctx context.Context, job *backbeatv1.RenderJob) (*backbeatv1.RenderDone, error) {
		const frames = 1
		progress := func(n int64) error {
			m := &backbeatv1.RenderProgress{VideoId: job.GetVideoId(), RunId: job.GetRunId(), Attempt: job.GetAttempt(),
				FramesDone: n, FramesTotal: frames, Percent: 100 * float64(n) / frames, Worker: worker, Pool: pool}
			if err := pub.Publish(ctx, pub.Subjects().Progress(job.GetVideoId()), m, ""); err != nil {
				return fmt.Errorf("publish progress: %w", err)
			}
			return nil
		}
		start := time.Now()
		if err := progress(0); err != nil {
			return nil, err
		}
		if err := s.put(ctx, job.GetOutputKey(), "video/mp4"); err != nil {
			return nil, err
		}
		if err := progress(frames); err != nil {
			return nil, err
		}
		return &backbeatv1.RenderDone{VideoId: job.GetVideoId(), RunId: job.GetRunId(), Attempt: job.GetAttempt(),
			VideoKey: job.GetOutputKey(), RenderSeconds: time.Since(start).Seconds(), Frames: frames, Encoder: "stub",
			Pool: pool, Worker: worker}, nil
	}
}

// cdn purges as the real one does: one put per path in the purges bucket.
func (s *stubs) cdn(purges jetstream.KeyValue) func(context.Context, *backbeatv1.CdnJob) (*backbeatv1.CdnDone, error) {
	return func(ctx context.Context, job *backbeatv1.CdnJob) (*backbeatv1.CdnDone, error) {
		done := &backbeatv1.CdnDone{VideoId: job.GetVideoId(), RunId: job.GetRunId()}
		rec, err := cdn.PurgeRecord{RunID: job.GetRunId(), At: time.Now().UTC()}.Encode()
		if err != nil {
			return nil, err
		}
		for _, p := range job.GetPaths() {
			if _, err := purges.Put(ctx, p, rec); err != nil {
				return nil, fmt.Errorf("purge %s: %w", p, err)
			}
			done.PurgedPaths = append(done.PurgedPaths, p)
		}
		return done, nil
	}
}

func (s *stubs) thumbnail(ctx context.Context, job *backbeatv1.ThumbnailJob) (*backbeatv1.ThumbnailDone, error) {
	for _, k := range []string{job.GetThumbnailKey(), job.GetSquareThumbnailKey()} {
		if err := s.put(ctx, k, "image/jpeg"); err != nil {
			return nil, err
		}
	}
	return &backbeatv1.ThumbnailDone{VideoId: job.GetVideoId(), RunId: job.GetRunId(),
		ThumbnailKey: job.GetThumbnailKey(), SquareThumbnailKey: job.GetSquareThumbnailKey()}, nil
}

// run runs every stub worker until ctx is done, concurrency jobs at a time
// each: audio, one renderer per pool on its three priority durables (as
// services/gpu-renderer's Run), cdn and thumbnail. conn gives each its
// connection by bus.Service* name.
func (s *stubs) run(ctx context.Context, concurrency int, conn func(service string) (workerConn, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	start := func(service, name string, run func(c workerConn, d bus.Deps) error) error {
		c, err := conn(service)
		if err != nil {
			return err
		}
		d := bus.Deps{Blob: s.blob, Pub: c.pub, Runs: c.runs, Log: s.log.With(zap.String("service", name)), Name: name}
		g.Go(func() error { return run(c, d) })
		return nil
	}
	err := start(bus.ServiceAudio, "stub-audio", func(c workerConn, d bus.Deps) error {
		st := &bus.Step[*backbeatv1.AudioJob, *backbeatv1.AudioDone]{Name: bus.StepAudio, Done: bus.KindAudioDone,
			Work: timed(s.trace, bus.StepAudio, s.audio), Deps: d}
		return st.Run(gctx, c.js, concurrency)
	})
	for _, pool := range s.pools {
		if err != nil {
			break
		}
		err = start(bus.ServiceRenderer, "stub-render-"+pool, func(c workerConn, d bus.Deps) error {
			st := &bus.Step[*backbeatv1.RenderJob, *backbeatv1.RenderDone]{Name: bus.StepRender, Done: bus.KindRenderDone,
				Work: timed(s.trace, bus.StepRender, s.render(pool, d.Name, c.pub)), Escalate: true, Deps: d}
			durables := make([]string, len(bus.Priorities))
			for i, prio := range bus.Priorities {
				durables[i] = bus.RenderConsumer(pool, prio)
			}
			return st.Run(gctx, c.js, concurrency, durables...)
		})
	}
	if err == nil {
		err = start(bus.ServiceCDN, "stub-cdn", func(c workerConn, d bus.Deps) error {
			purges, err := bus.KV(gctx, c.js, bus.BucketPurges)
			if err != nil {
				return err
			}
			st := &bus.Step[*backbeatv1.CdnJob, *backbeatv1.CdnDone]{Name: bus.StepCDN, Done: bus.KindCDNDone, Unguarded: true,
				Work: timed(s.trace, bus.StepCDN, s.cdn(purges)), Deps: d}
			return st.Run(gctx, c.js, concurrency)
		})
	}
	if err == nil {
		err = start(bus.ServiceThumbnail, "stub-thumbnail", func(c workerConn, d bus.Deps) error {
			st := &bus.Step[*backbeatv1.ThumbnailJob, *backbeatv1.ThumbnailDone]{Name: bus.StepThumbnail, Done: bus.KindThumbnailDone,
				Work: timed(s.trace, bus.StepThumbnail, s.thumbnail), Deps: d}
			return st.Run(gctx, c.js, concurrency)
		})
	}
	if err != nil {
		cancel()
		_ = g.Wait()
		return err
	}
	return g.Wait()
}
