package renderer

import (
	"fmt"
	"image"
	"image/draw"
	"math"
	"slices"
	"sync"

	"github.com/backbeat/backbeat/pkg/analysis"
	"github.com/backbeat/backbeat/services/gpu-renderer/internal/yuv"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// SceneInput is everything a frame depends on besides its number.
type SceneInput struct {
	Template *template.Template
	// Layout is template.LayoutSquare, LayoutPortrait or LayoutLandscape.
	Layout string
	// Width and Height override the layout's full size (tests render small
	// frames); both must be even for 4:2:0. Zero means the full size.
	Width, Height int
	// FPS of the video and Frames in it.
	FPS    int
	Frames int
	// Analysis drives the layers; frame N reads the analysis frame at the
	// same time position.
	Analysis *analysis.Analysis
	// Cover is the decoded cover art, or nil (cover layers are skipped and
	// "no_cover" layers drawn).
	Cover         image.Image
	Title, Artist string
	// Settings override the template's default settings.
	Settings  map[string]string
	Watermark bool
}

// drawer is a layer drawn for every frame. draw must only touch pixels
// inside its box and read nothing but the scene and n.
type drawer interface {
	draw(dst *image.RGBA, dmg *damage, n int)
}

// layerEntry is a per-frame layer and the box it draws in; keyed layers
// are drawn through the dirty rectangle's cache, not every frame.
type layerEntry struct {
	d     drawer
	box   image.Rectangle
	keyed bool
	// occ is set when this layer is the occluder of a dirty rectangle: once
	// a key's core is cached, the layer is drawn around its core only.
	occ *occlusion
}

// Scene is the immutable per-render state: the static base (every layer that
// does not move and is not above a moving one, drawn once), the per-frame
// layers, and the rectangles those can touch. Compose only reads it, so any
// number of goroutines may compose frames of one scene at once; the only
// state written later is the per-key YUV caches of frames.go and
// frames_occlude.go, each filled once under a sync.Once.
type Scene struct {
	w, h   int
	fps    int
	frames int
	an     *analysis.Analysis
	static *image.RGBA
	layers []layerEntry
	// dirty are the even-aligned rectangles per-frame layers draw in; the
	// rest of every frame equals the static base.
	dirty []dirtyRect
	// staticYUV caches the base converted to 8-bit (0) and 10-bit (1) YUV.
	yuvOnce [2]sync.Once
	yuv     [2][]byte
}

// NewScene validates the input and prepares everything that does not change
// from frame to frame.
func NewScene(in SceneInput) (*Scene, error) {
	if in.Template == nil {
		return nil, fmt.Errorf("scene: no template")
	}
	w, h, err := template.FrameSize(in.Layout)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", in.Template.Name, err)
	}
	if in.Width != 0 || in.Height != 0 {
		w, h = in.Width, in.Height
	}
	if w < 16 || h < 16 || w%2 != 0 || h%2 != 0 || w > 8192 || h > 8192 {
		return nil, fmt.Errorf("scene: frame size %dx%d must be even and 16..8192", w, h)
	}
	if in.FPS <= 0 || in.Frames <= 0 {
		return nil, fmt.Errorf("scene: fps %d and frames %d must be positive", in.FPS, in.Frames)
	}
	if in.Analysis == nil {
		return nil, fmt.Errorf("scene: no analysis")
	}
	if err := in.Analysis.Validate(); err != nil {
		return nil, err
	}
	pal, err := template.NewPalette(in.Template, in.Settings)
	if err != nil {
		return nil, err
	}
	if in.Cover != nil {
		// Decoded JPEGs are YCbCr: convert once here, so every scaling of
		// the cover below reads RGBA (x/image/draw converts per sample
		// otherwise, which costs more than the scaling).
		if _, ok := in.Cover.(*image.RGBA); !ok {
			b := in.Cover.Bounds()
			rgba := image.NewRGBA(b)
			draw.Draw(rgba, b, in.Cover, b.Min, draw.Src)
			in.Cover = rgba
		}
	}
	s := &Scene{w: w, h: h, fps: in.FPS, frames: in.Frames, an: in.Analysis}
	s.static = image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 3; i < len(s.static.Pix); i += 4 {
		s.static.Pix[i] = 255 // opaque black under everything
	}
	if err := s.build(in, pal); err != nil {
		return nil, err
	}
	return s, nil
}

// build draws static layers into the base, or into sprites when they sit
// above a per-frame layer they overlap (order matters there), and prepares
// the per-frame layers.
func (s *Scene) build(in SceneInput, pal *template.Palette) error {
	var live []image.Rectangle // boxes drawn per frame so far
	hasWatermark := false
	full := image.Rect(0, 0, s.w, s.h)
	add := func(i int, l *template.Layer) error {
		kind, dynamic := l.Kind()
		rect := full
		if kind != "background" {
			rect = s.px(l.Box.For(in.Layout))
		}
		if !dynamic {
			var dst *image.RGBA
			below := false
			for _, r := range live {
				below = below || r.Overlaps(rect)
			}
			if below {
				dst = image.NewRGBA(rect) // transparent sprite blended per frame
			} else {
				dst = s.static
			}
			if err := s.drawStatic(dst, rect, in, pal, l); err != nil {
				return fmt.Errorf("layers[%d].%s: %w", i, kind, err)
			}
			if below {
				s.layers = append(s.layers, layerEntry{d: sprite{img: dst}, box: rect})
				live = append(live, rect)
			}
			return nil
		}
		d, err := s.newDrawer(rect, in, pal, l)
		if err != nil {
			return fmt.Errorf("layers[%d].%s: %w", i, kind, err)
		}
		if p, ok := d.(*progress); ok && !slices.ContainsFunc(live, rect.Overlaps) {
			// Nothing moving under the track: it is static, drawn once
			// into the base, and frames draw only the played part.
			p.drawTrack(s.static)
			p.trackInBase = true
		}
		if d != nil {
			s.layers = append(s.layers, layerEntry{d: d, box: rect})
			live = append(live, rect)
		}
		return nil
	}
	for i := range in.Template.Layers {
		l := &in.Template.Layers[i]
		if (l.When == "cover" && in.Cover == nil) || (l.When == "no_cover" && in.Cover != nil) {
			continue
		}
		if l.Watermark != nil {
			hasWatermark = true
			if !in.Watermark {
				continue
			}
		}
		if err := add(i, l); err != nil {
			return err
		}
	}
	if in.Watermark && !hasWatermark {
		if err := add(len(in.Template.Layers), defaultWatermark()); err != nil {
			return err
		}
	}
	s.setDirty(mergeRects(live, full))
	return nil
}

// setDirty records the dirty rectangles and marks those drawn by a single
// keyed layer, whose pixels are then cached per key.
func (s *Scene) setDirty(rects []image.Rectangle) {
	s.dirty = make([]dirtyRect, len(rects))
	for i, r := range rects {
		s.dirty[i].r = r
		var only []int
		for j, l := range s.layers {
			if l.box.Overlaps(r) {
				only = append(only, j)
			}
		}
		if len(only) != 1 {
			s.setOccluder(i, only)
			continue
		}
		if kd, ok := s.layers[only[0]].d.(keyedDrawer); ok {
			s.layers[only[0]].keyed = true
			s.dirty[i].keyed = kd
			for hd := range s.dirty[i].cache {
				s.dirty[i].cache[hd] = make([]keyCache, kd.keys())
			}
		}
	}
}

// defaultWatermark is the watermark of templates that place none: small,
// right-aligned on the bottom edge of the safe area.
func defaultWatermark() *template.Layer {
	b := func(w, h float64) *template.Box { return &template.Box{X: 0.95 - w, Y: 0.95 - h, W: w, H: h} }
	return &template.Layer{Box: &template.Placement{Square: b(0.4, 0.024), Portrait: b(0.4, 0.0135), Landscape: b(0.25, 0.024)},
		Watermark: &template.WatermarkLayer{Align: "right"}}
}

// px converts a fractional box to pixels.
func (s *Scene) px(b *template.Box) image.Rectangle {
	if b == nil {
		return image.Rectangle{}
	}
	fw, fh := float64(s.w), float64(s.h)
	return image.Rect(int(math.Round(b.X*fw)), int(math.Round(b.Y*fh)),
		int(math.Round((b.X+b.W)*fw)), int(math.Round((b.Y+b.H)*fh)))
}

// mergeRects aligns rectangles outward to even coordinates (4:2:0 chroma
// covers 2×2 blocks) and merges overlapping ones, so each dirty pixel is
// converted once.
func mergeRects(rs []image.Rectangle, frame image.Rectangle) []image.Rectangle {
	var out []image.Rectangle
	for _, r := range rs {
		r = image.Rect(r.Min.X&^1, r.Min.Y&^1, (r.Max.X+1)&^1, (r.Max.Y+1)&^1).Intersect(frame)
		if !r.Empty() {
			out = append(out, r)
		}
	}
	for merged := true; merged; {
		merged = false
		for i := 0; i < len(out) && !merged; i++ {
			for j := i + 1; j < len(out); j++ {
				if out[i].Overlaps(out[j]) {
					out[i] = out[i].Union(out[j])
					out = append(out[:j], out[j+1:]...)
					merged = true
					break
				}
			}
		}
	}
	return out
}

// Size is the frame size in pixels.
func (s *Scene) Size() (w, h int) { return s.w, s.h }

// Frames is the number of frames of the video.
func (s *Scene) Frames() int { return s.frames }

// NewFrame allocates a frame buffer of the scene's size.
func (s *Scene) NewFrame() *image.RGBA { return image.NewRGBA(image.Rect(0, 0, s.w, s.h)) }

// analysisIndex maps a video frame to the analysis frame at the same time.
func (s *Scene) analysisIndex(n int) int {
	if n < 0 {
		return 0
	}
	i := int(int64(n) * int64(s.an.FPS) / int64(s.fps))
	return min(i, len(s.an.Frames)-1)
}

// Compose draws frame n into dst (which must be s.NewFrame()-sized). It
// overwrites every pixel and reads only the scene and n, so frame n is the
// same whether it is drawn alone or in a sequence, on any goroutine.
func (s *Scene) Compose(dst *image.RGBA, n int) {
	copy(dst.Pix, s.static.Pix)
	for _, l := range s.layers {
		l.d.draw(dst, nil, n)
	}
}

// composeYUV writes frame n as planar YUV into out, equal byte for byte to
// converting Compose's output, with a fresh composer and a buffer holding
// the static base (tests use it; the renderer keeps both across frames).
func (s *Scene) composeYUV(out []byte, n int, hdr bool) {
	copy(out, s.staticYUV(hdr))
	s.newComposer().compose(&yuvFrame{b: out, moved: s.rowSpans()}, n, hdr)
}

// staticYUV converts the base once per bit depth.
func (s *Scene) staticYUV(hdr bool) []byte {
	k := 0
	if hdr {
		k = 1
	}
	s.yuvOnce[k].Do(func() {
		s.yuv[k] = make([]byte, yuv.FrameSize(s.w, s.h, hdr))
		if hdr {
			yuv.ToYUV420P10(s.yuv[k], s.static)
		} else {
			yuv.ToYUV420(s.yuv[k], s.static)
		}
	})
	return s.yuv[k]
}

// sprite is a static layer drawn above a per-frame layer: pre-rendered once,
// blended every frame.
type sprite struct{ img *image.RGBA }

func (sp sprite) draw(dst *image.RGBA, dmg *damage, _ int) {
	blendOver(dst, dmg, sp.img, sp.img.Rect.Min.X, sp.img.Rect.Min.Y, sp.img.Rect)
}
