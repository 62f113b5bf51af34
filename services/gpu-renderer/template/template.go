// Package template is the renderer's templates as data: the JSON format
// (Template and its layer kinds), its validation, the registry a renderer
// serves from, and the built-in templates, embedded from templates/*.json.
//
// A template is a stack of layers (background, cover, bars, waveform, rings,
// particles, text, progress, watermark), each placed per format; the
// compositor (package renderer) draws them bottom to top. A new look is a
// JSON file, not a Go change, and extending the product means this package
// and docs/templates/README.md, never the drawing code.
package template

import (
	"errors"
	"fmt"
	"image"
)

// Layout names, one per output format; layers place themselves per layout.
const (
	LayoutSquare    = "square"
	LayoutPortrait  = "portrait"
	LayoutLandscape = "landscape"
)

// Layouts lists every layout a template must support, in a stable order.
var Layouts = []string{LayoutSquare, LayoutPortrait, LayoutLandscape}

// SafeMargin is the fraction of each frame edge that no template element may
// enter, so that players and social apps that crop or overlay UI never cut
// the title, artist, cover or bars. Only backgrounds reach the edges.
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
// template serves every resolution, including the small ones tests render.
type Box struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

// Placement gives a layer one box per format: the three formats differ too
// much in shape for one box to look right in all of them.
type Placement struct {
	Square    *Box `json:"square,omitempty"`
	Portrait  *Box `json:"portrait,omitempty"`
	Landscape *Box `json:"landscape,omitempty"`
}

// For returns the box of a layout, nil when the placement has none.
func (p *Placement) For(layout string) *Box {
	if p == nil {
		return nil
	}
	switch layout {
	case LayoutSquare:
		return p.Square
	case LayoutPortrait:
		return p.Portrait
	case LayoutLandscape:
		return p.Landscape
	}
	return nil
}

// Color is "#rrggbb", "#rrggbbaa" (alpha last) or "$name", a reference to one
// of the template's settings, which a user may override per video.
type Color string

// Template is one look: the default values of its user-tunable settings and
// its layers, drawn in order (the first is at the bottom).
type Template struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Settings are the knobs a user may override in RenderJob.template_settings
	// (colours referenced as "$name" by layers, and cover_pulse), with their
	// defaults. Keys a template does not declare are ignored, so apps may send
	// newer knobs to older renderers.
	Settings map[string]string `json:"settings,omitempty"`
	Layers   []Layer           `json:"layers"`

	// images are the decoded background files of a template loaded from a
	// directory, by file name; filled by LoadDir.
	images map[string]image.Image
}

// Image returns a background image loaded with the template (by the file
// name its layer gives), nil when there is none.
func (t *Template) Image(name string) image.Image { return t.images[name] }

// Layer is one element of a template. Exactly one of the kind fields is set;
// Box places it in each format (every kind but background needs one).
type Layer struct {
	// When limits the layer to videos with cover art ("cover") or without
	// ("no_cover"), so a layout can fill the space a missing cover leaves.
	When string     `json:"when,omitempty"`
	Box  *Placement `json:"box,omitempty"`

	Background *BackgroundLayer `json:"background,omitempty"`
	Cover      *CoverLayer      `json:"cover,omitempty"`
	Bars       *BarsLayer       `json:"bars,omitempty"`
	Waveform   *WaveformLayer   `json:"waveform,omitempty"`
	Rings      *RingsLayer      `json:"rings,omitempty"`
	Particles  *ParticlesLayer  `json:"particles,omitempty"`
	Text       *TextLayer       `json:"text,omitempty"`
	Progress   *ProgressLayer   `json:"progress,omitempty"`
	Watermark  *WatermarkLayer  `json:"watermark,omitempty"`
}

// BackgroundLayer fills the whole frame: an image (the cover art or a file
// next to the template) shrunk, blurred and darkened once per render, or a
// gradient, or a colour. With Image "cover" the gradient or colour is what
// videos without cover art get.
type BackgroundLayer struct {
	Color    Color   `json:"color,omitempty"`
	Gradient []Color `json:"gradient,omitempty"`
	// Angle of a linear gradient in degrees: 0 runs top to bottom, 90 left to right.
	Angle float64 `json:"angle,omitempty"`
	// Radial runs the gradient from the centre to the corners instead.
	Radial bool   `json:"radial,omitempty"`
	Image  string `json:"image,omitempty"`
	// Blur radius as a fraction of the frame's short edge (0..0.2).
	Blur float64 `json:"blur,omitempty"`
	// Darken is the fraction of brightness removed from the image (0..1).
	Darken float64 `json:"darken,omitempty"`
}

// CoverLayer is the cover art, scaled to fit its box at the top of its pulse
// and pulsing with the beat. Videos without cover art skip it.
type CoverLayer struct {
	// Pulse is how much larger the cover is on a beat (0..0.3); the setting
	// cover_pulse overrides it.
	Pulse float64 `json:"pulse"`
	// Shape is "rounded" (default), "square" or "circle".
	Shape string `json:"shape,omitempty"`
	// Radius of rounded corners as a fraction of the side (0..0.5).
	Radius float64 `json:"radius,omitempty"`
}

// BarsLayer is the spectrum as bars.
type BarsLayer struct {
	// Style is "linear" (lows left), "mirrored" (lows in the middle,
	// symmetric) or "circular" (around the centre of the box).
	Style string `json:"style"`
	Count int    `json:"count"`
	// Gap is the fraction of each bar's slot left empty (0..0.9).
	Gap     float64 `json:"gap"`
	Rounded bool    `json:"rounded,omitempty"`
	// Anchor is "bottom" (default) or "center" (bars grow up and down) for
	// linear and mirrored bars.
	Anchor string `json:"anchor,omitempty"`
	// MinHeight is the fraction of the box a silent bar keeps (0..0.5).
	MinHeight float64 `json:"min_height,omitempty"`
	// Hold and Decay smooth heights as a pure function of the frame:
	// height(N) = max over k in 0..Hold of level(N-k)·Decay^k.
	Hold  int     `json:"hold,omitempty"`
	Decay float64 `json:"decay,omitempty"`
	// Inner is the radius where circular bars start, as a fraction of half
	// the box's short side (0.1..0.9).
	Inner float64 `json:"inner,omitempty"`
	// Color at the foot of a bar and ColorTop at its tip (default Color).
	Color    Color `json:"color"`
	ColorTop Color `json:"color_top,omitempty"`
}

// WaveformLayer is the loudness envelope of the last Window seconds, newest
// at the right, drawn symmetric about the box's middle line.
type WaveformLayer struct {
	Window   float64 `json:"window"`
	Color    Color   `json:"color"`
	ColorTop Color   `json:"color_top,omitempty"`
}

// RingsLayer draws rings born on beats around the box centre; they grow and
// fade over Life seconds, thicker and brighter when the music is loud.
type RingsLayer struct {
	Life float64 `json:"life"`
	// Thickness as a fraction of half the box's short side (0.002..0.2).
	Thickness float64 `json:"thickness"`
	// MinRadius and MaxRadius as fractions of half the box's short side.
	MinRadius float64 `json:"min_radius"`
	MaxRadius float64 `json:"max_radius"`
	Color     Color   `json:"color"`
}

// ParticlesLayer draws Count particles drifting through the box; loudness
// speeds them up and brightens them. Particle i at frame N depends only on
// Seed, i and the analysis up to N, never on earlier frames' state.
type ParticlesLayer struct {
	Count int   `json:"count"`
	Seed  int64 `json:"seed,omitempty"`
	// Size of a particle as a fraction of the frame's short edge (0.001..0.03).
	Size float64 `json:"size"`
	// Speed in box heights (or radii) per second at silence (0..2).
	Speed float64 `json:"speed"`
	// Direction is "up" (default) or "out" (from the box centre).
	Direction string `json:"direction,omitempty"`
	Color     Color  `json:"color"`
}

// TextLayer is one line of text sized to its box height, shrunk to fit the
// box width and cut with an ellipsis beyond that.
type TextLayer struct {
	// Text may contain {title} and {artist}.
	Text string `json:"text"`
	// Font is "regular", "bold" (default), "medium", "italic" or "mono".
	Font  string `json:"font,omitempty"`
	Color Color  `json:"color"`
	// Align is "center" (default), "left" or "right".
	Align string `json:"align,omitempty"`
	// Upper draws the text in capitals.
	Upper  bool    `json:"upper,omitempty"`
	Shadow *Shadow `json:"shadow,omitempty"`
}

// Shadow is a text's drop shadow, offset in fractions of the text height.
type Shadow struct {
	DX    float64 `json:"dx"`
	DY    float64 `json:"dy"`
	Color Color   `json:"color"`
}

// ProgressLayer is the bar that fills as the video plays.
type ProgressLayer struct {
	Color Color `json:"color"`
	Track Color `json:"track,omitempty"`
}

// WatermarkLayer places the "made with Backbeat" line that bundles with
// RenderJob.watermark get; it draws nothing for other bundles. A template
// without one gets a default watermark in the bottom-right corner.
type WatermarkLayer struct {
	Text  string `json:"text,omitempty"`
	Color Color  `json:"color,omitempty"`
	Align string `json:"align,omitempty"`
}

// Kind names the layer's kind and whether it changes from frame to frame.
func (l *Layer) Kind() (name string, dynamic bool) {
	switch {
	case l.Background != nil:
		return "background", false
	case l.Cover != nil:
		return "cover", true
	case l.Bars != nil:
		return "bars", true
	case l.Waveform != nil:
		return "waveform", true
	case l.Rings != nil:
		return "rings", true
	case l.Particles != nil:
		return "particles", true
	case l.Text != nil:
		return "text", false
	case l.Progress != nil:
		return "progress", true
	case l.Watermark != nil:
		return "watermark", false
	}
	return "", false
}

// kinds counts the kind fields set, for validation.
func (l *Layer) kinds() int {
	n := 0
	for _, set := range []bool{l.Background != nil, l.Cover != nil, l.Bars != nil, l.Waveform != nil,
		l.Rings != nil, l.Particles != nil, l.Text != nil, l.Progress != nil, l.Watermark != nil} {
		if set {
			n++
		}
	}
	return n
}
