// Package analysis is the per-frame description of the cropped audio that the
// audio service writes (analysis/<vid>.json) and the renderer draws from. It is
// the contract between the two: frame N of the video reads Frames[N].
package analysis

import (
	"encoding/json"
	"fmt"
	"io"
)

// Version is bumped when the meaning of a field changes.
const Version = 1

// Analysis holds one entry per video frame.
type Analysis struct {
	Version int `json:"version"`
	// FPS is the video frame rate the analysis was computed for.
	FPS int `json:"fps"`
	// Duration of the cropped audio in seconds.
	Duration float64 `json:"duration"`
	// Bands is the number of spectrum bands per frame (log-spaced 40 Hz–16 kHz).
	Bands int `json:"bands"`
	// Frames: len == ceil(Duration*FPS).
	Frames []Frame `json:"frames"`
}

// Frame is the audio around one video frame, normalised to 0..1.
type Frame struct {
	// Spectrum has Bands values in 0..1 (dB scaled, smoothed).
	Spectrum []float32 `json:"s"`
	// Loudness is RMS loudness in 0..1 (dB scaled).
	Loudness float32 `json:"l"`
	// Beat is true on the frame where an onset/beat was detected.
	Beat bool `json:"b,omitempty"`
	// BeatPulse decays from 1 at a beat to 0, for pulsing art.
	BeatPulse float32 `json:"p"`
}

// Validate checks internal consistency so a renderer never indexes out of range.
func (a *Analysis) Validate() error {
	if a.FPS <= 0 || a.FPS > 120 {
		return fmt.Errorf("analysis: fps %d out of range", a.FPS)
	}
	if a.Bands <= 0 || a.Bands > 512 {
		return fmt.Errorf("analysis: bands %d out of range", a.Bands)
	}
	if len(a.Frames) == 0 {
		return fmt.Errorf("analysis: no frames")
	}
	for i, f := range a.Frames {
		if len(f.Spectrum) != a.Bands {
			return fmt.Errorf("analysis: frame %d has %d bands, want %d", i, len(f.Spectrum), a.Bands)
		}
	}
	return nil
}

// Decode reads and validates an analysis.
func Decode(r io.Reader) (*Analysis, error) {
	var a Analysis
	if err := json.NewDecoder(r).Decode(&a); err != nil {
		return nil, fmt.Errorf("analysis: decode: %w", err)
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}
