package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/cli"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/devstack"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/workspace"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/services/api"
)

// realRegion is the seconds of song each real video renders.
const realRegion = 8

// realRun renders o.realVideos videos of the demo song, one at a time, on
// `backbeat dev` (devstack: every real service in-process, SQLite, a local
// blob folder) through the API as an app would, and reports per video the
// workers' busy time (their "message handled" log line's took) and the
// overhead around it, with the same trace as the stub runs.
func realRun(ctx context.Context, o options) (string, error) {
	dir, err := os.MkdirTemp(o.tmp, "pipebench-real-")
	if err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	song := o.realSong
	if song == "" {
		song = filepath.Join(dir, "song.wav")
		cmd := exec.CommandContext(ctx, filepath.Join(o.root, "scripts/demo-song.sh"), song, "12")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("demo-song.sh: %w: %s", err, out)
		}
	}
	logPath := filepath.Join(dir, "dev.log")
	log, err := logging.NewRoot("info", logPath)
	if err != nil {
		return "", err
	}
	logf("real: backbeat dev with the demo song, %d video(s) of %d s, one at a time", o.realVideos, realRegion)
	st, err := devstack.Start(ctx, devstack.Options{Dir: filepath.Join(dir, "dev"), NATSPort: -1, HTTPAddr: "127.0.0.1:0", Log: log})
	if err != nil {
		return "", fmt.Errorf("start backbeat dev: %w", err)
	}
	defer st.Stop()
	tr := newTrace(bus.Subjects{Prefix: bus.DefaultPrefix})
	unsub, err := tr.subscribe(st.NC)
	if err != nil {
		return "", err
	}
	defer unsub()
	client := &cli.Client{BaseURL: st.BaseURL, Key: st.APIKey, HTTP: &http.Client{Timeout: time.Minute}}
	var vids []string
	for i := 0; i < o.realVideos; i++ {
		vid := fmt.Sprintf("real-%d", i)
		up, err := client.Upload(ctx, vid, api.KindAudio, song)
		if err != nil {
			return "", fmt.Errorf("upload %s: %w", vid, err)
		}
		ready := tr.start(vid)
		req := api.CreateRequest{VideoID: vid, AudioKey: up.Key, EndSeconds: realRegion, Template: "spectrum", Format: "square",
			Title: "pipebench", Artist: "real", RequestID: "req-" + vid}
		if _, err := client.CreateVideo(ctx, req); err != nil {
			return "", fmt.Errorf("create %s: %w", vid, err)
		}
		select {
		case <-ready:
		case <-time.After(o.timeout):
			return "", fmt.Errorf("video %s not ready within %s", vid, o.timeout)
		case <-ctx.Done():
			return "", ctx.Err()
		}
		vids = append(vids, vid)
	}
	_ = log.Sync()
	if err := busyFromLog(logPath, tr); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nReal media on `backbeat dev` (every service in-process, SQLite, local blobs; the demo song, %d s square "+
		"`spectrum` videos, one at a time; busy = each worker's \"message handled\" took; load average now %s), ms:\n\n", realRegion, workspace.LoadAvg())
	b.WriteString("| video | create→ready | busy audio / render / cdn | overhead |")
	for _, h := range coordinatorHops {
		fmt.Fprintf(&b, " %s |", h.name)
	}
	b.WriteString(" hand-off audio / render / cdn |\n|" + strings.Repeat(" ---: |", 5+len(coordinatorHops)) + "\n")
	for _, vid := range vids {
		f, ok := tr.figuresOf(vid)
		if !ok {
			return b.String(), fmt.Errorf("video %s: incomplete trace", vid)
		}
		tr.mu.Lock()
		busy := tr.vids[vid].busy
		tr.mu.Unlock()
		fmt.Fprintf(&b, "| %s | %.0f | %.0f / %.0f / %.0f | %.1f |", vid, ms(f.total),
			ms(busy[bus.StepAudio]), ms(busy[bus.StepRender]), ms(busy[bus.StepCDN]), ms(f.overhead))
		for _, h := range coordinatorHops {
			fmt.Fprintf(&b, " %.1f |", ms(f.hops[h.name]))
		}
		fmt.Fprintf(&b, " %.1f / %.1f / %.1f |\n", ms(f.handoffs[bus.StepAudio]), ms(f.handoffs[bus.StepRender]), ms(f.handoffs[bus.StepCDN]))
	}
	return b.String(), nil
}

// busyFromLog reads the workers' "message handled" lines (zap JSON; took in
// seconds) and records each as the busy time of its video and step.
func busyFromLog(path string, tr *trace) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read the dev log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"message handled"`) {
			continue
		}
		var line struct {
			Msg     string  `json:"msg"`
			Step    string  `json:"step"`
			VideoID string  `json:"video_id"`
			Took    float64 `json:"took"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "message handled" {
			continue
		}
		switch line.Step {
		case bus.StepAudio, bus.StepRender, bus.StepCDN:
			tr.worked(line.VideoID, line.Step, 0, time.Duration(line.Took*float64(time.Second)))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read the dev log: %w", err)
	}
	return nil
}
