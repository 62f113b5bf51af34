// Package renderer draws audio-reactive frames from a template and the audio
// analysis, streams them into ffmpeg and serves render jobs from JetStream.
//
// Templates are data (Template, loadable from JSON), not code forks: the
// compositor only knows boxes, bars, a cover, text and a progress bar, and a
// template says where they go for each format and how they move.
package renderer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Layout names, one per output format; templates key their layouts by them.
const (
	LayoutSquare    = "square"
	LayoutPortrait  = "portrait"
	LayoutLandscape = "landscape"
)

// SafeMargin is the fraction of each frame edge that no template element may
// enter, so that players and social apps that crop or overlay UI never cut
// the title, artist or bars.
const SafeMargin = 0.05

// ErrUnknownTemplate is returned (wrapped) for a template name nobody
// registered; the service marks it permanent because retrying cannot help.
var ErrUnknownTemplate = errors.New("unknown template")

// ErrUnknownFormat is returned (wrapped) for a format without a size or a
// layout in the template.
var ErrUnknownFormat = errors.New("unknown format")

// FrameSize returns the pixel size of a layout name at full resolution.
func FrameSize(layout string) (w, h int, err error) {
	switch layout {
	case LayoutSquare:
		return 1080, 1080, nil
	case LayoutPortrait:
		return 1080, 1920, nil
	case LayoutLandscape:
		return 1920, 1080, nil
	}
	return 0, 0, fmt.Errorf("%w %q", ErrUnknownFormat, layout)
}

// Box is a rectangle in fractions of the frame (0..1 on both axes), so one
// layout serves every resolution, including the small ones tests render.
type Box struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

// Layout places the elements of a template in one format. A nil box leaves the
// element out.
type Layout struct {
	// Cover is the pulsing cover art; it is drawn as the largest centred square
	// that fits the box at the top of its pulse.
	Cover *Box `json:"cover,omitempty"`
	// Bars is the area of the spectrum bars; bars grow up from its bottom edge.
	Bars *Box `json:"bars,omitempty"`
	// Title and Artist are single text lines; the font size is the box height
	// and shrinks until the text fits the box width.
	Title  *Box `json:"title,omitempty"`
	Artist *Box `json:"artist,omitempty"`
	// Progress is the thin bar that fills as the video plays.
	Progress *Box `json:"progress,omitempty"`
	// Align is "center" (default) or "left" for the text lines.
	Align string `json:"align,omitempty"`
	// WithoutCover, when set, replaces this layout for videos without cover
	// art, so the space of the cover is not left empty.
	WithoutCover *Layout `json:"without_cover,omitempty"`
}

// Background says how the cover becomes the backdrop: shrunk, blurred and
// darkened once per render, so per-frame cost stays a memory copy.
type Background struct {
	// Downscale is the factor the cover is shrunk by before blurring (cheap blur).
	Downscale int `json:"downscale"`
	// BlurRadius is the box-blur radius in shrunk pixels.
	BlurRadius int `json:"blur_radius"`
	// Darken is the fraction of brightness removed (0 keeps it, 1 is black).
	Darken float64 `json:"darken"`
}

// Bars describes the spectrum bars.
type Bars struct {
	// Count of bars across the bars box.
	Count int `json:"count"`
	// Gap is the fraction of each bar's slot left empty.
	Gap float64 `json:"gap"`
	// Rounded gives bars round caps.
	Rounded bool `json:"rounded"`
	// Mirror makes the bars symmetric about the box's vertical centre line,
	// with low frequencies in the middle.
	Mirror bool `json:"mirror"`
	// MinHeight is the fraction of the box height a silent bar keeps.
	MinHeight float64 `json:"min_height"`
	// Hold and Decay smooth bar heights over time as a pure function of the
	// frame: height(N) = max over k in 0..Hold of level(N-k)·Decay^k.
	Hold  int     `json:"hold"`
	Decay float64 `json:"decay"`
}

// Template is one look. Settings holds the defaults of the knobs a user may
// change (colours, pulse); Layouts holds one Layout per format.
type Template struct {
	Name       string            `json:"name"`
	Settings   map[string]string `json:"settings"`
	Background Background        `json:"background"`
	Bars       Bars              `json:"bars"`
	Layouts    map[string]Layout `json:"layouts"`
}

// Validate checks a template before any frame is drawn: every format has a
// layout and every box stays inside the safe area.
func (t *Template) Validate() error {
	if t.Name == "" {
		return errors.New("template: empty name")
	}
	if t.Bars.Count < 1 || t.Bars.Count > 256 {
		return fmt.Errorf("template %s: bar count %d out of 1..256", t.Name, t.Bars.Count)
	}
	if t.Bars.Gap < 0 || t.Bars.Gap >= 1 || t.Bars.Decay < 0 || t.Bars.Decay > 1 || t.Bars.Hold < 0 || t.Bars.Hold > 60 {
		return fmt.Errorf("template %s: bar gap, decay or hold out of range", t.Name)
	}
	if t.Background.Downscale < 1 || t.Background.BlurRadius < 0 || t.Background.Darken < 0 || t.Background.Darken > 1 {
		return fmt.Errorf("template %s: background settings out of range", t.Name)
	}
	if _, err := parseSettings(t.Settings, nil); err != nil {
		return fmt.Errorf("template %s: default settings: %w", t.Name, err)
	}
	for _, name := range []string{LayoutSquare, LayoutPortrait, LayoutLandscape} {
		l, ok := t.Layouts[name]
		if !ok {
			return fmt.Errorf("template %s: no %s layout", t.Name, name)
		}
		if err := t.validateLayout(name, l); err != nil {
			return err
		}
		if l.WithoutCover != nil {
			if l.WithoutCover.WithoutCover != nil {
				return fmt.Errorf("template %s: %s layout: without_cover nests", t.Name, name)
			}
			if err := t.validateLayout(name+" without_cover", *l.WithoutCover); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateLayout keeps every box of one layout inside the safe area.
func (t *Template) validateLayout(name string, l Layout) error {
	boxes := map[string]*Box{"cover": l.Cover, "bars": l.Bars, "title": l.Title, "artist": l.Artist, "progress": l.Progress}
	for what, b := range boxes {
		if b == nil {
			continue
		}
		if err := b.inSafeArea(); err != nil {
			return fmt.Errorf("template %s: %s layout: %s: %w", t.Name, name, what, err)
		}
	}
	if l.Align != "" && l.Align != "center" && l.Align != "left" {
		return fmt.Errorf("template %s: %s layout: align %q", t.Name, name, l.Align)
	}
	return nil
}

func (b *Box) inSafeArea() error {
	const eps = 1e-9
	if b.W <= 0 || b.H <= 0 {
		return fmt.Errorf("empty box %+v", *b)
	}
	if b.X < SafeMargin-eps || b.Y < SafeMargin-eps || b.X+b.W > 1-SafeMargin+eps || b.Y+b.H > 1-SafeMargin+eps {
		return fmt.Errorf("box %+v leaves the safe area", *b)
	}
	return nil
}

// ParseTemplate reads a JSON template and validates it.
func ParseTemplate(r io.Reader) (*Template, error) {
	var t Template
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("template: decode: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Templates is a registry of templates by name.
type Templates struct {
	byName map[string]*Template
}

// NewTemplates registers the given templates after validating them.
func NewTemplates(ts ...*Template) (*Templates, error) {
	r := &Templates{byName: make(map[string]*Template, len(ts))}
	for _, t := range ts {
		if err := t.Validate(); err != nil {
			return nil, err
		}
		if _, dup := r.byName[t.Name]; dup {
			return nil, fmt.Errorf("template %s registered twice", t.Name)
		}
		r.byName[t.Name] = t
	}
	return r, nil
}

// Lookup returns a template or an error wrapping ErrUnknownTemplate.
func (r *Templates) Lookup(name string) (*Template, error) {
	t, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %v)", ErrUnknownTemplate, name, r.Names())
	}
	return t, nil
}

// Names lists the registered templates, sorted.
func (r *Templates) Names() []string {
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
