package media

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// ProbeResult is what the services need to know about a media file: its
// duration and, per stream, enough to check codecs, geometry, colour and rate.
type ProbeResult struct {
	// Duration of the container in seconds (0 when ffprobe does not know).
	Duration float64
	// FormatName is ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2".
	FormatName string
	// BitRate of the container in bits per second (0 when unknown).
	BitRate int64
	// Streams in file order.
	Streams []Stream
}

// Stream describes one stream of a probed file.
type Stream struct {
	Index     int
	CodecName string // "aac", "mp3", "h264", …
	CodecType string // "audio", "video", "subtitle", "data"
	// Video fields.
	Width          int
	Height         int
	PixFmt         string
	ColorPrimaries string
	// RFrameRate is ffprobe's r_frame_rate, e.g. "30/1"; FrameRate is its value.
	RFrameRate string
	FrameRate  float64
	// Audio fields.
	SampleRate int
	Channels   int
	// Duration of the stream in seconds (0 when unknown).
	Duration float64
	// AttachedPic marks cover art embedded in an audio file.
	AttachedPic bool
}

// Audio returns the first audio stream, or nil when there is none.
func (p *ProbeResult) Audio() *Stream { return p.first("audio") }

// Video returns the first real video stream (cover art, which ffprobe lists
// as a video stream, is skipped), or nil when there is none.
func (p *ProbeResult) Video() *Stream { return p.first("video") }

func (p *ProbeResult) first(kind string) *Stream {
	for i := range p.Streams {
		if p.Streams[i].CodecType == kind && !p.Streams[i].AttachedPic {
			return &p.Streams[i]
		}
	}
	return nil
}

type probeJSON struct {
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
		BitRate    string `json:"bit_rate"`
	} `json:"format"`
	Streams []struct {
		Index          int    `json:"index"`
		CodecName      string `json:"codec_name"`
		CodecType      string `json:"codec_type"`
		Width          int    `json:"width"`
		Height         int    `json:"height"`
		PixFmt         string `json:"pix_fmt"`
		ColorPrimaries string `json:"color_primaries"`
		RFrameRate     string `json:"r_frame_rate"`
		SampleRate     string `json:"sample_rate"`
		Channels       int    `json:"channels"`
		Duration       string `json:"duration"`
		Disposition    struct {
			AttachedPic int `json:"attached_pic"`
		} `json:"disposition"`
	} `json:"streams"`
}

// Probe runs ffprobe on a local file. Callers vet user-supplied sources with
// netguard.CheckInput first; a relative path is made absolute so that a name like
// "a:b" is never read as a protocol.
func Probe(ctx context.Context, path string) (*ProbeResult, error) {
	in, err := localArg(path)
	if err != nil {
		return nil, err
	}
	out, err := FFprobe(ctx, "-v", "error", "-of", "json", "-show_format", "-show_streams", in).Output()
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", filepath.Base(path), err)
	}
	return parseProbe(out)
}

func parseProbe(out []byte) (*ProbeResult, error) {
	var pj probeJSON
	if err := json.Unmarshal(out, &pj); err != nil {
		return nil, fmt.Errorf("probe: decode ffprobe json: %w", err)
	}
	r := &ProbeResult{
		FormatName: pj.Format.FormatName,
		Duration:   parseFloat(pj.Format.Duration),
		BitRate:    int64(parseFloat(pj.Format.BitRate)),
	}
	for _, s := range pj.Streams {
		sr, _ := strconv.Atoi(s.SampleRate)
		r.Streams = append(r.Streams, Stream{
			Index:          s.Index,
			CodecName:      s.CodecName,
			CodecType:      s.CodecType,
			Width:          s.Width,
			Height:         s.Height,
			PixFmt:         s.PixFmt,
			ColorPrimaries: s.ColorPrimaries,
			RFrameRate:     s.RFrameRate,
			FrameRate:      parseRational(s.RFrameRate),
			SampleRate:     sr,
			Channels:       s.Channels,
			Duration:       parseFloat(s.Duration),
			AttachedPic:    s.Disposition.AttachedPic == 1,
		})
	}
	if r.Duration == 0 {
		// Some containers only know stream durations.
		for _, s := range r.Streams {
			r.Duration = max(r.Duration, s.Duration)
		}
	}
	return r, nil
}

// localArg turns a local path into an argument ffmpeg cannot mistake for a
// protocol or an option: an absolute path always starts with "/".
func localArg(path string) (string, error) {
	if path == "" || strings.ContainsRune(path, 0) {
		return "", fmt.Errorf("media: invalid local path %q", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("media: absolute path of %q: %w", path, err)
	}
	return abs, nil
}

// LocalArg is localArg for callers that build their own ffmpeg command lines
// (e.g. the renderer's "-i <audio>"): it returns an absolute path.
func LocalArg(path string) (string, error) { return localArg(path) }

func parseFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return f
}

func parseRational(s string) float64 {
	num, den, ok := strings.Cut(s, "/")
	if !ok {
		return parseFloat(s)
	}
	n, d := parseFloat(num), parseFloat(den)
	if d == 0 {
		return 0
	}
	return n / d
}
