package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTinyDevRun runs the harness as scripts/bench/pipeline.sh does, at a
// tiny size (2 in flight, 4 videos, the dev shape on SQLite): every video
// becomes ready, every figure is there and positive, and the report has
// every column. Speed is never asserted: the machine is shared.
func TestTinyDevRun(t *testing.T) {
	o, err := parseFlags([]string{"-root", "../../../..", "-shapes", ShapeDevSQLite, "-levels", "2", "-videos", "4",
		"-runs", "1", "-worker-concurrency", "2", "-tmp", t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	res, err := runOnce(ctx, o, ShapeDevSQLite, level{inflight: 2, videos: 4}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if res.notReady != 0 || len(res.figs) != 4 {
		t.Fatalf("%d videos measured, %d not ready; want 4 and 0", len(res.figs), res.notReady)
	}
	for i, f := range res.figs {
		if f.total <= 0 || f.busy <= 0 || f.overhead <= 0 || f.overhead >= f.total {
			t.Errorf("video %d: total %v, busy %v, overhead %v: want 0 < overhead < total and busy > 0", i, f.total, f.busy, f.overhead)
		}
		for _, s := range pathSteps {
			if _, ok := f.pickup[s]; !ok {
				t.Errorf("video %d: no pickup of %s", i, s)
			}
		}
		for _, h := range coordinatorHops {
			if f.hops[h.name] <= 0 {
				t.Errorf("video %d: hop %s is %v", i, h.name, f.hops[h.name])
			}
		}
	}
	// 6 events per video: create, audio.done, render.done, cdn.done,
	// thumbnail.done, notify.done (the warm-up's are not counted).
	if res.eventsAll != 6*4 || res.events == 0 || res.statements == 0 {
		t.Errorf("events %d in the window, %d in all, %d SQL statements; want 24 in all and some of each", res.events, res.eventsAll, res.statements)
	}

	report, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"| shape | in flight | videos | overhead p50 | overhead p99 | pickup p50 audio / render / cdn | events/s | videos/s | events/video | SQL/event |",
		"| dev-sqlite | 2 | 4 | ", "create→audio job", "cdn.done→ready", "render pickup / hand-off", "CPU ms/event", "process ", "load average before", "Method:"} {
		if !strings.Contains(report, col) {
			t.Errorf("report lacks %q:\n%s", col, report)
		}
	}
	t.Log("\n" + report)
}

// TestScriptRuns runs scripts/bench/pipeline.sh, which `make bench` runs
// for minutes, at its smallest: the production shape (nats-server from the
// shipped config, the render-coordinator binary, Postgres, MinIO) and the
// dev shape, 2 videos in flight, 4 videos. It checks the script builds,
// runs and prints a row per shape, never the figures.
func TestScriptRuns(t *testing.T) {
	script := filepath.Join("../../../..", "scripts/bench/pipeline.sh")
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "QUICK=1", "SHAPES=prod,dev-sqlite", "LEVELS=2", "MIN_VIDEOS=4", "PIPELINE_TIMEOUT=240")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	for _, row := range []string{"| prod | 2 | 4 |", "| dev-sqlite | 2 | 4 |"} {
		if !strings.Contains(string(out), row) {
			t.Errorf("the report has no row %q:\n%s", row, out)
		}
	}
}
