// Command render-bench is the driver of scripts/bench/render.sh: one mode
// per run, so the script can time each and read its peak memory with
// /usr/bin/time -v.
//
//	render-bench -mode full   -template T -seconds S -audio a.m4a -out o.mp4   # draw + encode
//	render-bench -mode raw    -template T -seconds S -out frames.yuv            # draw only
//	render-bench -mode encode -seconds S -audio a.m4a -raw frames.yuv -out o.mp4 # encode only
//	render-bench -mode inputs -seconds S -cover c.jpg -analysis a.json           # write inputs
//
// With -cover and -analysis, full and raw decode those files, as the service
// decodes what it downloads; without them they synthesise the inputs.
//
// It prints one line "wall_seconds=… frames=… peak_rss_kb=… go_cpu_seconds=…
// ffmpeg_cpu_seconds=…" on stdout; -cpuprofile writes a pprof CPU profile.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	_ "image/png"
	"os"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/backbeat/backbeat/pkg/analysis"
	"github.com/backbeat/backbeat/pkg/media"
	renderer "github.com/backbeat/backbeat/services/gpu-renderer"
	"github.com/backbeat/backbeat/services/gpu-renderer/rendertest"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "render-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	mode := flag.String("mode", "full", "full, raw or encode")
	name := flag.String("template", "spectrum", "built-in template")
	layout := flag.String("format", template.LayoutSquare, "square, portrait or landscape")
	seconds := flag.Float64("seconds", 10, "video length")
	audio := flag.String("audio", "", "audio to mux (full, encode)")
	raw := flag.String("raw", "", "raw frames to encode (encode)")
	out := flag.String("out", "", "output file")
	crf := flag.Int("crf", 20, "CRF")
	preset := flag.String("preset", "veryfast", "x264 preset")
	fps := flag.Int("fps", 30, "frames per second")
	workers := flag.Int("workers", 0, "compose workers (0: the renderer's default)")
	cpuProfile := flag.String("cpuprofile", "", "write a pprof CPU profile of this process here")
	coverPath := flag.String("cover", "", "cover art (JPEG or PNG) to decode; written by -mode inputs")
	analysisPath := flag.String("analysis", "", "analysis JSON to decode; written by -mode inputs")
	flag.Parse()
	if *cpuProfile != "" {
		stop, err := startProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}

	enc := renderer.Encoding{CRF: *crf, Preset: *preset, FPS: *fps, Concurrency: *workers}
	w, h, err := template.FrameSize(*layout)
	if err != nil {
		return err
	}
	ctx := context.Background()
	start := time.Now()
	frames := renderer.FrameCount(*seconds, *fps)
	switch *mode {
	case "inputs":
		if err := writeInputs(*coverPath, *analysisPath, *seconds, *fps); err != nil {
			return err
		}
	case "encode":
		args, err := renderer.FFmpegArgs(enc, w, h, *raw, *audio, *out)
		if err != nil {
			return err
		}
		if err := media.Run(ctx, args); err != nil {
			return err
		}
	case "full", "raw":
		reg := template.Builtin()
		tpl, err := reg.Lookup(*name)
		if err != nil {
			return err
		}
		an, cover, err := readInputs(*coverPath, *analysisPath, *seconds, *fps)
		if err != nil {
			return err
		}
		job := renderer.Job{
			Scene: renderer.SceneInput{Template: tpl, Layout: *layout, Analysis: an, Cover: cover,
				Title: "Midnight Avenue", Artist: "The Backbeats", Watermark: true},
			Encoding: enc, Duration: *seconds, AudioPath: *audio, OutPath: *out,
		}
		r := renderer.NewRenderer(nil, nil)
		if *mode == "full" {
			if _, err := r.Render(ctx, job, nil); err != nil {
				return err
			}
			break
		}
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(f, 4<<20)
		if _, err := r.RenderRaw(ctx, job, 0, 0, bw); err != nil {
			_ = f.Close()
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown mode %q", *mode)
	}
	self, child := cpuSeconds(syscall.RUSAGE_SELF), cpuSeconds(syscall.RUSAGE_CHILDREN)
	fmt.Printf("wall_seconds=%.3f frames=%d peak_rss_kb=%d go_cpu_seconds=%.3f go_sys_seconds=%.3f ffmpeg_cpu_seconds=%.3f ffmpeg_sys_seconds=%.3f\n",
		time.Since(start).Seconds(), frames, peakRSS(), self, sysSeconds(syscall.RUSAGE_SELF), child, sysSeconds(syscall.RUSAGE_CHILDREN))
	return nil
}

// writeInputs writes the sample cover as a JPEG and a synthetic analysis as
// JSON, the files the service would download for a job.
func writeInputs(coverPath, analysisPath string, seconds float64, fps int) error {
	if coverPath == "" || analysisPath == "" {
		return fmt.Errorf("inputs: -cover and -analysis are required")
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, rendertest.SampleCover(), &jpeg.Options{Quality: 90}); err != nil {
		return fmt.Errorf("inputs: cover: %w", err)
	}
	if err := os.WriteFile(coverPath, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("inputs: %w", err)
	}
	data, err := json.Marshal(rendertest.SyntheticAnalysis(seconds, fps, 48))
	if err != nil {
		return fmt.Errorf("inputs: analysis: %w", err)
	}
	if err := os.WriteFile(analysisPath, data, 0o644); err != nil {
		return fmt.Errorf("inputs: %w", err)
	}
	return nil
}

// readInputs decodes the files writeInputs wrote, or synthesises the inputs
// when no files are given.
func readInputs(coverPath, analysisPath string, seconds float64, fps int) (*analysis.Analysis, image.Image, error) {
	if coverPath == "" && analysisPath == "" {
		return rendertest.SyntheticAnalysis(seconds, fps, 48), rendertest.SampleCover(), nil
	}
	f, err := os.Open(analysisPath)
	if err != nil {
		return nil, nil, fmt.Errorf("analysis: %w", err)
	}
	defer func() { _ = f.Close() }()
	an, err := analysis.Decode(bufio.NewReader(f))
	if err != nil {
		return nil, nil, err
	}
	cf, err := os.Open(coverPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cover: %w", err)
	}
	defer func() { _ = cf.Close() }()
	cover, _, err := image.Decode(bufio.NewReader(cf))
	if err != nil {
		return nil, nil, fmt.Errorf("cover: %w", err)
	}
	return an, cover, nil
}

// startProfile starts a CPU profile written to path; stop ends it.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// cpuSeconds is user+sys CPU time of this process (RUSAGE_SELF) or of its
// finished children, i.e. ffmpeg (RUSAGE_CHILDREN): the split of a full
// render's cost that /usr/bin/time's sum hides.
func cpuSeconds(who int) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// sysSeconds is the kernel's share of the CPU time of this process
// (RUSAGE_SELF: pipe writes, page faults, wake-ups) or of ffmpeg
// (RUSAGE_CHILDREN: its reads, among others).
func sysSeconds(who int) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Stime.Nano()).Seconds()
}

// peakRSS is this process's high-water resident set (VmHWM) in kB.
func peakRSS() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int
			_, _ = fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return 0
}
