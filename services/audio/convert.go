package audio

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/backbeat/backbeat/pkg/analysis"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/media"
)

// DefaultFPS is the analysis frame rate when a job does not name one.
const DefaultFPS = 30

// regionSlack tolerates a region end a hair past the probed end of the track:
// apps compute the end from their own decoder, which may disagree by a frame.
const regionSlack = 0.05

// Request is what Convert needs from a job, independent of NATS.
type Request struct {
	// Start and End of the region in seconds. End 0 means "to the end of the
	// track" (still bounded by MaxRegion).
	Start, End float64
	// MaxRegion is the bundle's longest region in seconds; 0 means no limit.
	MaxRegion float64
	// FPS of the analysis; 0 means DefaultFPS.
	FPS int
}

// Output is what Convert wrote into its directory.
type Output struct {
	// AudioPath is the AAC track (48 kHz stereo, 192 kb/s, .m4a) for muxing.
	AudioPath string
	// MP3Path is the 320 kb/s MP3 for download.
	MP3Path string
	// AnalysisPath is the analysis JSON; Analysis is the same, decoded.
	AnalysisPath string
	Analysis     *analysis.Analysis
	// Duration of the cropped audio, probed from the AAC file.
	Duration float64
	// SourceDuration is the probed duration of the whole source.
	SourceDuration float64
}

// CheckRegion checks a region against the real duration of the track and the
// bundle's limit and returns the region to cut. Every refusal is permanent:
// the same job would be refused again.
func CheckRegion(start, end, duration, maxRegion float64) (from, to float64, err error) {
	if end <= 0 && start == 0 {
		end = duration
		if maxRegion > 0 {
			end = math.Min(end, maxRegion)
		}
	}
	switch {
	case math.IsNaN(start) || math.IsNaN(end) || math.IsInf(start, 0) || math.IsInf(end, 0):
		return 0, 0, bus.Permanentf("region %v..%v is not a number", start, end)
	case start < 0:
		return 0, 0, bus.Permanentf("region start %.1fs is negative", start)
	case end <= start:
		return 0, 0, bus.Permanentf("region end %.1fs is not after its start %.1fs", end, start)
	case start >= duration:
		return 0, 0, bus.Permanentf("region start %.1fs is past the end of the track (%.1fs)", start, duration)
	case end > duration+regionSlack:
		return 0, 0, bus.Permanentf("region end %.1fs is past the end of the track (%.1fs)", end, duration)
	case maxRegion > 0 && end-start > maxRegion+1e-9:
		return 0, 0, bus.Permanentf("region is %.1fs long, longer than the %.1fs your plan allows", end-start, maxRegion)
	}
	return start, math.Min(end, duration), nil
}

// Convert crops src (a local file) to the region, strips its metadata,
// encodes the AAC and MP3 and computes the analysis, all into dir. One ffmpeg
// run decodes the source once and writes the three outputs (AAC, MP3 and the
// mono float PCM the analysis reads). Bad input gives permanent errors.
func Convert(ctx context.Context, src, dir string, req Request) (*Output, error) {
	fps := req.FPS
	if fps == 0 {
		fps = DefaultFPS
	}
	if fps < 0 || fps > 120 {
		return nil, bus.Permanentf("fps %d out of range 1..120", fps)
	}
	probe, err := media.Probe(ctx, src)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// ffprobe failing on a local file is the file's fault.
		return nil, bus.Permanentf("source is not a readable media file: %w", err)
	}
	if probe.Audio() == nil {
		return nil, bus.Permanentf("source is not an audio file")
	}
	srcDur := probe.Duration
	if a := probe.Audio(); a.Duration > 0 {
		srcDur = a.Duration
	}
	if srcDur <= 0 {
		return nil, bus.Permanentf("source has no known duration")
	}
	start, end, err := CheckRegion(req.Start, req.End, srcDur, req.MaxRegion)
	if err != nil {
		return nil, err
	}

	in, err := media.LocalArg(src)
	if err != nil {
		return nil, bus.Permanent(err)
	}
	out := &Output{
		AudioPath:      filepath.Join(dir, "audio.m4a"),
		MP3Path:        filepath.Join(dir, "audio.mp3"),
		AnalysisPath:   filepath.Join(dir, "analysis.json"),
		SourceDuration: srcDur,
	}
	length := end - start
	secs := func(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
	args := []string{"-nostdin", "-y", "-loglevel", "error",
		// -ss before -i with transcoding is sample-accurate for audio.
		"-ss", secs(start), "-t", secs(length), "-i", in,
		"-map", "0:a:0", "-map_metadata", "-1", "-map_chapters", "-1",
		"-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-ac", "2", "-movflags", "+faststart", out.AudioPath,
		"-map", "0:a:0", "-map_metadata", "-1", "-map_chapters", "-1",
		"-c:a", "libmp3lame", "-b:a", "320k", "-ar", "48000", "-ac", "2", "-id3v2_version", "0", out.MP3Path,
		"-map", "0:a:0", "-map_metadata", "-1",
		"-c:a", "pcm_f32le", "-ar", strconv.Itoa(AnalysisSampleRate), "-ac", "1", "-f", "f32le", "pipe:1",
	}
	pcm := &pcmWriter{pcm: make([]float32, 0, int(length*AnalysisSampleRate)+1024)}
	cmd := media.FFmpeg(ctx, args...)
	cmd.Stdout = pcm
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("crop and encode: %w", err)
	}

	cropped, err := media.Probe(ctx, out.AudioPath)
	if err != nil {
		return nil, fmt.Errorf("probe cropped audio: %w", err)
	}
	out.Duration = cropped.Duration
	if a := cropped.Audio(); a != nil && a.Duration > 0 {
		out.Duration = a.Duration
	}
	if out.Duration <= 0 {
		return nil, fmt.Errorf("cropped audio has no duration")
	}

	an, err := Analyze(ctx, pcm.pcm, AnalysisSampleRate, out.Duration, DefaultParams(fps))
	if err != nil {
		return nil, err
	}
	out.Analysis = an
	if err := writeJSON(out.AnalysisPath, an); err != nil {
		return nil, err
	}
	return out, nil
}

// pcmWriter decodes the little-endian float32 samples ffmpeg writes as they
// arrive, so the step holds the track once (as floats, 11.5 MB for a
// 60 s region at 48 kHz) rather than as bytes and then again as floats. A
// sample split across two writes is carried over; a partial one at the end
// is dropped.
type pcmWriter struct {
	pcm   []float32
	carry [4]byte
	n     int // bytes in carry
}

func (w *pcmWriter) Write(b []byte) (int, error) {
	total := len(b)
	if w.n > 0 {
		k := copy(w.carry[w.n:], b)
		w.n += k
		b = b[k:]
		if w.n < len(w.carry) {
			return total, nil
		}
		w.pcm = append(w.pcm, math.Float32frombits(binary.LittleEndian.Uint32(w.carry[:])))
		w.n = 0
	}
	for ; len(b) >= 4; b = b[4:] {
		w.pcm = append(w.pcm, math.Float32frombits(binary.LittleEndian.Uint32(b)))
	}
	w.n = copy(w.carry[:], b)
	return total, nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// decodeAnalysis is analysis.Decode, kept behind a name so tests read the
// file exactly as the renderer will.
var decodeAnalysis = analysis.Decode
