package coordinator

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// Bundle is what a user's plan buys: quality, priority, where renders run and
// how long a region may be. Bundles are configuration, not code.
type Bundle struct {
	Name string `json:"name"`
	// CRF and Preset of the H.264 encode.
	CRF    int32  `json:"crf"`
	Preset string `json:"preset"`
	// FPS of the video and its analysis.
	FPS int32 `json:"fps"`
	// Priority: high, normal or low.
	Priority string `json:"priority"`
	// Pools, in the order attempts move through them.
	Pools []string `json:"pools"`
	// MaxAttempts of the render across pools (default: len(Pools)).
	MaxAttempts int32 `json:"max_attempts"`
	// MaxRegionSeconds is the longest fragment.
	MaxRegionSeconds float64 `json:"max_region_seconds"`
	// Concurrency of frame workers inside one render.
	Concurrency int32 `json:"concurrency"`
	// UnitSeconds: one credit unit buys this many seconds of video (rounded up).
	UnitSeconds float64 `json:"unit_seconds"`
	// Watermark is drawn on free videos.
	Watermark bool `json:"watermark"`
	// HDR allowed.
	HDR bool `json:"hdr"`
	// Encoder: libx264 or h264_nvenc.
	Encoder string `json:"encoder"`
}

// DefaultBundles are used unless a bundles file is configured.
func DefaultBundles() map[string]Bundle {
	return map[string]Bundle{
		"free":  {Name: "free", CRF: 26, Preset: "veryfast", FPS: 30, Priority: bus.PrioLow, Pools: []string{"cpu"}, MaxAttempts: 2, MaxRegionSeconds: 30, Concurrency: 2, UnitSeconds: 10, Watermark: true, Encoder: "libx264"},
		"pro":   {Name: "pro", CRF: 20, Preset: "medium", FPS: 30, Priority: bus.PrioNormal, Pools: []string{"gpu", "cpu"}, MaxRegionSeconds: 120, Concurrency: 4, UnitSeconds: 10, HDR: true, Encoder: "h264_nvenc"},
		"label": {Name: "label", CRF: 18, Preset: "slow", FPS: 30, Priority: bus.PrioHigh, Pools: []string{"gpu", "cpu"}, MaxAttempts: 3, MaxRegionSeconds: 300, Concurrency: 8, UnitSeconds: 10, HDR: true, Encoder: "h264_nvenc"},
	}
}

// LoadBundles reads a JSON array of bundles from path.
func LoadBundles(path string) (map[string]Bundle, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bundles: %w", err)
	}
	var list []Bundle
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("parse bundles %s: %w", path, err)
	}
	out := map[string]Bundle{}
	for i, bd := range list {
		if err := bd.Validate(); err != nil {
			return nil, fmt.Errorf("bundles[%d]: %w", i, err)
		}
		out[bd.Name] = bd
	}
	return out, nil
}

// Validate checks a bundle can drive a render.
func (b Bundle) Validate() error {
	switch {
	case b.Name == "":
		return fmt.Errorf("name: required")
	case b.CRF < 0 || b.CRF > 51:
		return fmt.Errorf("%s: crf %d out of 0..51", b.Name, b.CRF)
	case len(b.Pools) == 0:
		return fmt.Errorf("%s: pools: at least one", b.Name)
	case b.MaxRegionSeconds <= 0:
		return fmt.Errorf("%s: max_region_seconds must be > 0", b.Name)
	case b.UnitSeconds <= 0:
		return fmt.Errorf("%s: unit_seconds must be > 0", b.Name)
	case b.FPS <= 0 || b.FPS > 60:
		return fmt.Errorf("%s: fps %d out of 1..60", b.Name, b.FPS)
	}
	switch b.Priority {
	case bus.PrioHigh, bus.PrioNormal, bus.PrioLow:
	default:
		return fmt.Errorf("%s: priority %q: want high, normal or low", b.Name, b.Priority)
	}
	return nil
}

// Units is what a region of this length costs.
func (b Bundle) Units(seconds float64) int64 {
	return int64(math.Ceil(seconds/b.UnitSeconds - 1e-9))
}

// Attempts is how many render attempts the bundle allows.
func (b Bundle) Attempts() int32 {
	if b.MaxAttempts > 0 {
		return b.MaxAttempts
	}
	return int32(len(b.Pools))
}

// PoolFor is the pool of a 1-based attempt: attempts walk the list and stay
// on its last pool.
func (b Bundle) PoolFor(attempt int32) string {
	i := int(attempt) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(b.Pools) {
		i = len(b.Pools) - 1
	}
	return b.Pools[i]
}

// PriorityProto maps the bundle's priority onto the wire enum.
func (b Bundle) PriorityProto() backbeatv1.Priority {
	switch b.Priority {
	case bus.PrioHigh:
		return backbeatv1.Priority_PRIORITY_HIGH
	case bus.PrioLow:
		return backbeatv1.Priority_PRIORITY_LOW
	}
	return backbeatv1.Priority_PRIORITY_NORMAL
}
