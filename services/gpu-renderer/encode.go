package renderer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/media"
)

// Encoder names a render may ask for.
const (
	EncoderX264  = "libx264"
	EncoderNVENC = "h264_nvenc"
)

// Encoding is what a render needs to know about its output; it mirrors the
// bundle's backbeatv1.Encoding with defaults applied.
type Encoding struct {
	// CRF is the constant rate factor (x264) or constant quality (NVENC), 0..51.
	CRF int
	// Preset is an x264 preset name; NVENC gets the closest of its p1..p7.
	Preset string
	// FPS of the video.
	FPS int
	// HDR selects 10-bit BT.2020 PQ output.
	HDR bool
	// Encoder is EncoderX264 or EncoderNVENC (falls back to x264 when NVENC
	// cannot be opened).
	Encoder string
	// Concurrency is the number of compose workers; 0 means
	// DefaultComposeWorkers.
	Concurrency int
}

// DefaultComposeWorkers is the number of compose workers of an x264 render
// that does not set one: one per four cores, at least one. A worker composes
// a frame many times faster than x264 encodes one on the same core, so more
// workers would not speed a render up; they would only take cores and cache
// from the encoder (docs/benchmarks.md, round 4, step 5, has the figures).
func DefaultComposeWorkers() int { return max(1, runtime.GOMAXPROCS(0)/4) }

// composeWorkers is the default number of compose workers of a render on
// encoder: with libx264 the encoder needs the cores (DefaultComposeWorkers);
// NVENC encodes on the GPU, leaving every core to composing.
func composeWorkers(encoder string) int {
	if encoder == EncoderNVENC {
		return runtime.GOMAXPROCS(0)
	}
	return DefaultComposeWorkers()
}

// x264Presets maps the x264 presets to the NVENC preset of similar cost.
var x264Presets = map[string]string{
	"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p4",
	"medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7", "placebo": "p7",
}

// withDefaults fills zero fields and rejects values no retry can fix.
func (e Encoding) withDefaults() (Encoding, error) {
	if e.CRF == 0 {
		e.CRF = 20
	}
	if e.Preset == "" {
		e.Preset = "veryfast"
	}
	if e.Encoder == "" {
		e.Encoder = EncoderX264
	}
	if e.Concurrency <= 0 {
		e.Concurrency = DefaultComposeWorkers()
	}
	if e.CRF < 0 || e.CRF > 51 {
		return e, fmt.Errorf("crf %d out of 0..51", e.CRF)
	}
	if _, ok := x264Presets[e.Preset]; !ok {
		return e, fmt.Errorf("unknown preset %q", e.Preset)
	}
	if e.FPS < 1 || e.FPS > 120 {
		return e, fmt.Errorf("fps %d out of 1..120", e.FPS)
	}
	if e.Encoder != EncoderX264 && e.Encoder != EncoderNVENC {
		return e, fmt.Errorf("unknown encoder %q (want %s or %s)", e.Encoder, EncoderX264, EncoderNVENC)
	}
	e.Concurrency = min(e.Concurrency, 64)
	return e, nil
}

func (e Encoding) pixFmt() string {
	if e.HDR {
		return "yuv420p10le"
	}
	return "yuv420p"
}

// syncLookaheadCores is the most cores on which x264's lookahead runs on the
// thread that feeds it frames (sync-lookahead=0) rather than on a thread of
// its own. x264 holds about 4.4 MB per 1080x1080 frame it buffers, and its
// lookahead thread queues bframes+1 more input frames (4 with every preset
// the bundles use: 17 MB). The decisions, and so the bytes, are the same.
// On two cores x264's 1.5 frame threads per core keep both busy without it
// (2.5 runnable threads on average, measured); with many more frame
// threads a lookahead that runs between frames could starve them, which was
// not measured here, so larger machines keep x264's default.
const syncLookaheadCores = 2

// videoCodecArgs are the encoder options after -c:v, including the output
// pixel format (equal to the input's, so ffmpeg converts nothing) and the
// colour tags that tell players how to read the samples.
func videoCodecArgs(e Encoding, encoder string) []string {
	args := []string{"-c:v", encoder}
	if encoder == EncoderNVENC {
		args = append(args, "-preset", x264Presets[e.Preset], "-rc", "vbr", "-cq", strconv.Itoa(e.CRF), "-b:v", "0")
	} else {
		args = append(args, "-crf", strconv.Itoa(e.CRF), "-preset", e.Preset)
		if runtime.GOMAXPROCS(0) <= syncLookaheadCores {
			args = append(args, "-x264-params", "sync-lookahead=0")
		}
	}
	args = append(args, "-pix_fmt", e.pixFmt())
	if e.HDR {
		args = append(args, "-profile:v", "high10",
			"-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc", "-color_range", "tv")
	} else {
		args = append(args, "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv")
	}
	return args
}

// rawQueue is how many raw frames ffmpeg's reader of the pipe queues ahead
// of the encoder. With two inputs, ffmpeg reads each in a thread of its own
// that queues 8 packets by default: 8 whole frames, 17 MB at 1080x1080. The
// renderer composes faster than x264 encodes, so the queue is always full
// and its depth buys no speed: x264 buffers its own lookahead anyway.
const rawQueue = 1

// ffmpegArgs builds the whole command line: raw frames on stdin, the audio
// copied, H.264 in an MP4 with the index at the front for progressive play.
func ffmpegArgs(e Encoding, encoder string, w, h int, audioPath, outPath string) ([]string, error) {
	audio, err := media.LocalArg(audioPath)
	if err != nil {
		return nil, err
	}
	out, err := media.LocalArg(outPath)
	if err != nil {
		return nil, err
	}
	args := []string{"-loglevel", "error", "-y",
		"-f", "rawvideo", "-pix_fmt", e.pixFmt(), "-s", fmt.Sprintf("%dx%d", w, h), "-r", strconv.Itoa(e.FPS),
		"-thread_queue_size", strconv.Itoa(rawQueue), "-i", "pipe:0",
		"-i", audio,
		"-map", "0:v:0", "-map", "1:a:0",
	}
	args = append(args, videoCodecArgs(e, encoder)...)
	args = append(args, "-c:a", "copy", "-movflags", "+faststart", "-f", "mp4", out)
	return args, nil
}

// FFmpegArgs is the command line Render runs for a w×h job, reading raw
// frames from input ("pipe:0" in Render). It is exported so the benchmark
// can encode a pre-rendered raw file with exactly the same settings.
func FFmpegArgs(e Encoding, w, h int, input, audioPath, outPath string) ([]string, error) {
	e, err := e.withDefaults()
	if err != nil {
		return nil, err
	}
	args, err := ffmpegArgs(e, e.Encoder, w, h, audioPath, outPath)
	if err != nil {
		return nil, err
	}
	for i, a := range args {
		if a == "pipe:0" {
			args[i] = input
		}
	}
	return args, nil
}

// encoderProbe remembers, per encoder and pixel format, whether ffmpeg can
// open it on this machine: h264_nvenc is compiled into Debian's ffmpeg but
// fails without an NVIDIA GPU, and finding out costs a process start.
type encoderProbe struct {
	mu      sync.Mutex
	results map[string]error
}

// usable returns nil when ffmpeg can encode a few frames with the encoder and
// options of e, or the reason it cannot.
func (p *encoderProbe) usable(ctx context.Context, e Encoding, encoder string) error {
	key := encoder + "/" + e.pixFmt()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err, ok := p.results[key]; ok {
		return err
	}
	if !media.HasEncoder(ctx, encoder) {
		err := fmt.Errorf("ffmpeg has no %s encoder", encoder)
		p.remember(key, err)
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	args := []string{"-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=256x256:r=25:d=0.2"}
	args = append(args, videoCodecArgs(e, encoder)...)
	args = append(args, "-f", "null", "-")
	err := media.FFmpeg(pctx, args...).Run()
	if err != nil && ctx.Err() != nil {
		return ctx.Err() // do not remember a probe we cut short
	}
	p.remember(key, err)
	return err
}

func (p *encoderProbe) remember(key string, err error) {
	if p.results == nil {
		p.results = map[string]error{}
	}
	p.results[key] = err
}

// chooseEncoder returns the encoder a render will use: the requested one, or
// libx264 when NVENC was asked for and cannot be opened here (logged with why).
func (p *encoderProbe) chooseEncoder(ctx context.Context, e Encoding, log *zap.Logger) (string, error) {
	if e.Encoder != EncoderNVENC {
		return e.Encoder, nil
	}
	err := p.usable(ctx, e, EncoderNVENC)
	if err == nil {
		return EncoderNVENC, nil
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("probe %s: %w", EncoderNVENC, err)
	}
	var ee *media.ExitError
	reason := err.Error()
	if errors.As(err, &ee) && ee.Stderr != "" {
		reason = ee.Stderr
	}
	log.Warn("nvenc unavailable, falling back to libx264", zap.String("reason", reason), zap.Bool("hdr", e.HDR))
	return EncoderX264, nil
}
