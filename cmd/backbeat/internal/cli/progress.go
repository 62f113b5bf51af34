package cli

import (
	"fmt"
	"math"
	"strings"

	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/services/api"
)

// BarWidth is the number of cells between the brackets.
const BarWidth = 30

// Bar draws pct (0–100) as [#####-----] with width cells; out-of-range and
// NaN values are clamped so a bad progress message cannot break the line.
func Bar(pct float64, width int) string {
	if math.IsNaN(pct) || pct < 0 {
		pct = 0
	}
	if pct > 100 {
		pct = 100
	}
	filled := int(pct / 100 * float64(width))
	return "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "]"
}

// Share of the whole job each stage stands for: rendering dominates.
const (
	audioShare  = 10.0
	renderShare = 85.0
)

// StageName is the human name of where a video is.
func StageName(v api.VideoView) string {
	switch v.Status {
	case "":
		return "queued"
	case store.StatusReady:
		return "ready"
	case store.StatusError, store.StatusCancelled, store.StatusStalled:
		return string(v.Status)
	}
	switch v.Stage {
	case store.StageAudio:
		return "preparing audio"
	case store.StageRender:
		if v.Progress == nil {
			return "waiting for a renderer"
		}
		return "rendering"
	case store.StageCDN:
		return "publishing"
	case store.StageDone:
		return "finishing"
	}
	return "queued"
}

// Overall is the progress of the whole pipeline, 0–100: the audio stage,
// then the render's own percent scaled into its share, then publishing.
func Overall(v api.VideoView) float64 {
	switch {
	case v.Status == store.StatusReady:
		return 100
	case v.Stage == store.StageRender:
		p := 0.0
		if v.Progress != nil {
			p = math.Max(0, math.Min(100, v.Progress.Percent))
		}
		return audioShare + renderShare*p/100
	case v.Stage == store.StageCDN || v.Stage == store.StageDone:
		return audioShare + renderShare
	}
	return 0
}

// ProgressLine is one redraw of the progress display, e.g.
//
//	rendering        [#########---------------------]  31%  frames 120/400 on cpu
func ProgressLine(v api.VideoView) string {
	pct := Overall(v)
	line := fmt.Sprintf("%-22s %s %3.0f%%", StageName(v), Bar(pct, BarWidth), math.Floor(pct))
	if p := v.Progress; p != nil && v.Stage == store.StageRender {
		line += fmt.Sprintf("  frames %d/%d", p.FramesDone, p.FramesTotal)
		if p.Pool != "" {
			line += " on " + p.Pool
		}
		if p.Attempt > 1 {
			line += fmt.Sprintf(" (attempt %d)", p.Attempt)
		}
	}
	return line
}

// progressDisplay draws progress lines on stderr: redrawn in place on a
// terminal, otherwise one line per stage or per tenth of the way, so logs of
// a CI job stay short.
type progressDisplay struct {
	env      Env
	last     string
	lastKey  string
	drawn    bool
	finished bool
}

func (d *progressDisplay) show(v api.VideoView) {
	line := ProgressLine(v)
	if d.env.StderrTTY {
		if line != d.last {
			fmt.Fprintf(d.env.Stderr, "\r%s\x1b[K", line)
			d.last, d.drawn = line, true
		}
		return
	}
	key := fmt.Sprintf("%s/%d", StageName(v), int(Overall(v)/10))
	if key != d.lastKey {
		fmt.Fprintln(d.env.Stderr, line)
		d.lastKey = key
	}
}

// done ends an in-place line so what follows starts on its own line.
func (d *progressDisplay) done() {
	if d.env.StderrTTY && d.drawn && !d.finished {
		fmt.Fprintln(d.env.Stderr)
	}
	d.finished = true
}
