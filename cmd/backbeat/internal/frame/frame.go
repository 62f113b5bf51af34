// Package frame is `backbeat frame`: it renders one frame of a template to a
// PNG, the quick loop for people designing templates (edit the JSON, run,
// look) without a pipeline, NATS or a video.
package frame

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	_ "image/jpeg" // cover formats
	"image/png"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	_ "golang.org/x/image/webp"

	"github.com/backbeat/backbeat/pkg/analysis"
	"github.com/backbeat/backbeat/services/audio"
	renderer "github.com/backbeat/backbeat/services/gpu-renderer"
	"github.com/backbeat/backbeat/services/gpu-renderer/rendertest"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// options are the parsed command line.
type options struct {
	template, format, at    string
	audio, analysis, cover  string
	title, artist, dir, out string
	width, height           int
	watermark               bool
	settings                settingsFlag
	fps                     int
	synthDuration           float64
	stderr                  io.Writer
}

// settingsFlag collects repeated --set key=value.
type settingsFlag map[string]string

func (s settingsFlag) String() string { return fmt.Sprint(map[string]string(s)) }

func (s settingsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	s[k] = val
	return nil
}

// Main runs `backbeat frame [flags] out.png`.
func Main(ctx context.Context, args []string) error {
	o, err := parse(args, os.Stderr)
	if err != nil {
		return err
	}
	return run(ctx, o)
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{settings: settingsFlag{}, stderr: stderr}
	fs := flag.NewFlagSet("frame", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backbeat frame --template T --format square|portrait|landscape --at 12.5s [flags] out.png")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.template, "template", "spectrum", "template name (built-in or from --template-dir)")
	fs.StringVar(&o.dir, "template-dir", "", "directory of your own *.json templates")
	fs.StringVar(&o.format, "format", template.LayoutSquare, "square, portrait or landscape")
	fs.StringVar(&o.at, "at", "0s", "time of the frame: 12.5s, 1m3s or seconds")
	fs.StringVar(&o.audio, "audio", "", "audio file to analyse (default: a synthetic 120 BPM analysis)")
	fs.StringVar(&o.analysis, "analysis", "", "analysis JSON written by the audio service (instead of --audio)")
	fs.StringVar(&o.cover, "cover", "", "cover art (PNG, JPEG, WebP); default: a generated sample, \"none\" for none")
	fs.StringVar(&o.title, "title", "Midnight Avenue", "title")
	fs.StringVar(&o.artist, "artist", "The Backbeats", "artist")
	fs.BoolVar(&o.watermark, "watermark", false, "draw the watermark some bundles get")
	fs.Var(o.settings, "set", "template setting key=value (repeatable), e.g. --set bar_color=#00ff88")
	fs.IntVar(&o.width, "width", 0, "frame width (default: the format's full size)")
	fs.IntVar(&o.height, "height", 0, "frame height")
	fs.IntVar(&o.fps, "fps", 30, "frame rate the time is counted in")
	fs.Float64Var(&o.synthDuration, "duration", 30, "length of the synthetic analysis in seconds")
	// Accept the output path before, between or after the flags.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) != 1 {
		fs.Usage()
		return nil, errors.New("frame: want exactly one output path")
	}
	o.out = rest[0]
	return o, nil
}

// parseAt reads "12.5s", "1m3s" or "12.5".
func parseAt(v string) (float64, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return d.Seconds(), nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) {
		return 0, fmt.Errorf("--at %q: want a time like 12.5s", v)
	}
	return f, nil
}

func run(ctx context.Context, o *options) error {
	at, err := parseAt(o.at)
	if err != nil {
		return err
	}
	reg, err := template.LoadTemplates(o.dir)
	if err != nil {
		return err
	}
	tpl, err := reg.Lookup(o.template)
	if err != nil {
		return err
	}
	an, err := loadAnalysis(ctx, o, at)
	if err != nil {
		return err
	}
	if at > an.Duration {
		return fmt.Errorf("--at %.2fs is past the end of the audio (%.2fs)", at, an.Duration)
	}
	cover, err := loadCover(o.cover)
	if err != nil {
		return err
	}
	frames := max(1, renderer.FrameCount(an.Duration, o.fps))
	s, err := renderer.NewScene(renderer.SceneInput{
		Template: tpl, Layout: o.format, Width: o.width, Height: o.height, FPS: o.fps, Frames: frames,
		Analysis: an, Cover: cover, Title: o.title, Artist: o.artist, Settings: o.settings, Watermark: o.watermark,
	})
	if err != nil {
		return err
	}
	n := min(int(math.Round(at*float64(o.fps))), frames-1)
	img := s.NewFrame()
	s.Compose(img, n)
	f, err := os.Create(o.out)
	if err != nil {
		return fmt.Errorf("create %s: %w", o.out, err)
	}
	if err := png.Encode(f, img); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", o.out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", o.out, err)
	}
	w, h := s.Size()
	fmt.Fprintf(o.stderr, "%s: %s %s %dx%d frame %d (%.2fs)\n", o.out, tpl.Name, o.format, w, h, n, at)
	return nil
}

// loadAnalysis reads --analysis, analyses --audio with the audio service's
// own code, or makes a synthetic analysis long enough for --at.
func loadAnalysis(ctx context.Context, o *options, at float64) (*analysis.Analysis, error) {
	switch {
	case o.analysis != "":
		f, err := os.Open(o.analysis)
		if err != nil {
			return nil, fmt.Errorf("analysis: %w", err)
		}
		defer f.Close()
		return analysis.Decode(f)
	case o.audio != "":
		dir, err := os.MkdirTemp("", "backbeat-frame-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		out, err := audio.Convert(ctx, o.audio, dir, audio.Request{FPS: o.fps})
		if err != nil {
			return nil, fmt.Errorf("analyse %s: %w", o.audio, err)
		}
		return out.Analysis, nil
	}
	return rendertest.SyntheticAnalysis(max(o.synthDuration, at+1), o.fps, 48), nil
}

func loadCover(path string) (image.Image, error) {
	switch path {
	case "":
		return rendertest.SampleCover(), nil
	case "none":
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cover: %w", err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("cover %s: %w", path, err)
	}
	return img, nil
}
