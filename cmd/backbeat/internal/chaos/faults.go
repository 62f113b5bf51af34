package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/proc"
	"github.com/backbeat/backbeat/pkg/bus"
)

// faultEvent is one thing the run did to the system, for the report.
type faultEvent struct {
	Phase  string
	At     time.Time
	What   string
	Detail string
}

// fault is one fault phase: inject runs while the phase's videos are
// submitted (it starts after the first two are created).
type fault struct {
	name   string
	title  string
	inject func(ctx context.Context, s *stack, r *runState) error
}

// faults are the fault phases, in order.
var faults = []fault{
	{"nats-leader", "SIGKILL the nats-server leading EVENTS and JOBS, restart it after 7 s", natsLeaderFault},
	{"renderer", "SIGKILL the gpu-pool renderer mid-render, restart it after 5 s", rendererFault},
	{"postgres", "restart Postgres (pg_ctlcluster restart)", postgresFault},
	{"coordinator-term", "SIGTERM the coordinator, start it again", coordinatorTermFault},
	{"coordinator-kill", "SIGKILL the coordinator, start it again after 2 s", coordinatorKillFault},
}

func natsLeaderFault(ctx context.Context, s *stack, r *runState) error {
	events, jobs, err := s.admin.colocate(ctx)
	if err != nil && events == "" {
		return fmt.Errorf("find leaders: %w", err)
	}
	note := fmt.Sprintf("EVENTS leader %s, JOBS leader %s", events, jobs)
	if events != jobs {
		note += " (JOBS would not move to the EVENTS leader: killing the EVENTS leader only"
		if err != nil {
			note += ": " + err.Error()
		}
		note += ")"
	}
	node := s.nats.node(events)
	if node == nil {
		return fmt.Errorf("leader %q is not one of the nodes", events)
	}
	if err := node.Kill(); err != nil {
		return err
	}
	r.record("SIGKILL nats-server "+node.serverName, note)
	if err := sleepCtx(ctx, 7*time.Second); err != nil {
		return err
	}
	if err := node.Start(); err != nil {
		return err
	}
	r.record("restart nats-server "+node.serverName, "same store dir")
	t0 := time.Now()
	if err := s.admin.allCurrent(ctx, 90*time.Second, bus.StreamEvents, bus.StreamJobs, "KV_"+bus.BucketRuns); err != nil {
		return fmt.Errorf("%s did not rejoin: %w", node.serverName, err)
	}
	newEvents, _ := s.admin.leader(ctx, bus.StreamEvents)
	newJobs, _ := s.admin.leader(ctx, bus.StreamJobs)
	r.record("nats-server "+node.serverName+" rejoined", fmt.Sprintf("EVENTS, JOBS and KV_runs replicas all current %.1fs after the restart; leaders now EVENTS %s, JOBS %s",
		time.Since(t0).Seconds(), newEvents, newJobs))
	return nil
}

func rendererFault(ctx context.Context, s *stack, r *runState) error {
	p := s.services["renderer-gpu"]
	const started = `"msg":"ffmpeg started"`
	before := r.faultBaseline
	deadline := time.Now().Add(60 * time.Second)
	for countIn(p.Log, started) <= before {
		if time.Now().After(deadline) {
			return fmt.Errorf("renderer-gpu logged no new render within 60s")
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	// Let the render get going: frames composed, ffmpeg encoding.
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	return killAndRestart(ctx, r, p, 5*time.Second,
		"its log showed a render started (ffmpeg started); process group killed, ffmpeg too")
}

func postgresFault(ctx context.Context, s *stack, r *runState) error {
	args := strings.Fields(s.o.pgRestart)
	t0 := time.Now()
	r.record("restart Postgres", s.o.pgRestart)
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", s.o.pgRestart, err, out)
	}
	r.record("Postgres back", fmt.Sprintf("restart took %.1fs", time.Since(t0).Seconds()))
	return nil
}

func coordinatorTermFault(ctx context.Context, s *stack, r *runState) error {
	p := s.services["render-coordinator"]
	r.record("SIGTERM render-coordinator", "")
	err := p.Stop(40 * time.Second)
	detail := "exited 0"
	if err != nil {
		detail = err.Error()
		r.problem("render-coordinator on SIGTERM: %v", err)
	}
	r.record("render-coordinator stopped", detail)
	return restart(ctx, r, p, 0)
}

func coordinatorKillFault(ctx context.Context, s *stack, r *runState) error {
	return killAndRestart(ctx, r, s.services["render-coordinator"], 2*time.Second, "")
}

// killAndRestart SIGKILLs p's process group, then restarts it after down.
func killAndRestart(ctx context.Context, r *runState, p *proc.Proc, down time.Duration, detail string) error {
	if err := p.Kill(); err != nil {
		return err
	}
	r.record("SIGKILL "+p.Name, detail)
	return restart(ctx, r, p, down)
}

// restart starts the stopped p after down and waits for its /readyz.
func restart(ctx context.Context, r *runState, p *proc.Proc, down time.Duration) error {
	if err := sleepCtx(ctx, down); err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	if err := p.WaitReady(ctx, 60*time.Second); err != nil {
		return err
	}
	r.record(p.Name+" restarted", "ready")
	return nil
}

// countIn counts the lines of file holding s.
func countIn(file, s string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	return bytes.Count(data, []byte(s))
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
