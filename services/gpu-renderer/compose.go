package renderer

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/backbeat/backbeat/pkg/analysis"
)

// pulseLevels is how many pre-scaled sizes of the cover exist; a frame picks
// the nearest one, so the pulse costs a blend, not a resample, per frame.
const pulseLevels = 9

// SceneInput is everything a frame depends on besides its number.
type SceneInput struct {
	Template *Template
	// Layout is LayoutSquare, LayoutPortrait or LayoutLandscape.
	Layout string
	// Width and Height override the layout's full size (tests render small
	// frames); both must be even for 4:2:0. Zero means the full size.
	Width, Height int
	// FPS of the video and Frames in it.
	FPS    int
	Frames int
	// Analysis drives the bars and the pulse; frame N reads the analysis frame
	// at the same time position.
	Analysis *analysis.Analysis
	// Cover is the decoded cover art, or nil for a gradient and no thumbnail.
	Cover         image.Image
	Title, Artist string
	// Settings override the template's default settings.
	Settings  map[string]string
	Watermark bool
}

// Scene is the immutable per-render state: the static layer (background,
// text, progress track) and pre-scaled covers. Compose only reads it, so any
// number of goroutines may compose frames of one scene at once.
type Scene struct {
	w, h     int
	fps      int
	frames   int
	an       *analysis.Analysis
	tpl      *Template
	st       settings
	static   *image.RGBA
	covers   []*image.RGBA // by pulse level, nil without cover
	coverBox image.Rectangle
	bars     image.Rectangle
	barRows  []color.RGBA // bar colour by absolute row
	progress image.Rectangle
	nbars    int // distinct levels (half the bars when mirrored)
}

// NewScene validates the input and prepares everything that does not change
// from frame to frame.
func NewScene(in SceneInput) (*Scene, error) {
	if in.Template == nil {
		return nil, fmt.Errorf("scene: no template")
	}
	layout, ok := in.Template.Layouts[in.Layout]
	if !ok {
		return nil, fmt.Errorf("template %s: %w %q", in.Template.Name, ErrUnknownFormat, in.Layout)
	}
	if in.Cover == nil && layout.WithoutCover != nil {
		layout = *layout.WithoutCover
	}
	w, h, err := FrameSize(in.Layout)
	if err != nil {
		return nil, err
	}
	if in.Width != 0 || in.Height != 0 {
		w, h = in.Width, in.Height
	}
	if w < 16 || h < 16 || w%2 != 0 || h%2 != 0 {
		return nil, fmt.Errorf("scene: frame size %dx%d must be even and at least 16", w, h)
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
	st, err := parseSettings(in.Template.Settings, in.Settings)
	if err != nil {
		return nil, err
	}
	s := &Scene{w: w, h: h, fps: in.FPS, frames: in.Frames, an: in.Analysis, tpl: in.Template, st: st}
	s.nbars = in.Template.Bars.Count
	if in.Template.Bars.Mirror {
		s.nbars = (s.nbars + 1) / 2
	}
	if err := s.buildStatic(in, layout); err != nil {
		return nil, err
	}
	return s, nil
}

// px converts a fractional box to pixels.
func (s *Scene) px(b *Box) image.Rectangle {
	if b == nil {
		return image.Rectangle{}
	}
	fw, fh := float64(s.w), float64(s.h)
	return image.Rect(int(math.Round(b.X*fw)), int(math.Round(b.Y*fh)),
		int(math.Round((b.X+b.W)*fw)), int(math.Round((b.Y+b.H)*fh)))
}

func (s *Scene) buildStatic(in SceneInput, l Layout) error {
	if in.Cover != nil {
		s.static = backdrop(in.Cover, s.w, s.h, in.Template.Background)
	} else {
		s.static = image.NewRGBA(image.Rect(0, 0, s.w, s.h))
		fillGradient(s.static, s.st.bgTop, s.st.bgBottom)
	}
	if in.Cover != nil && l.Cover != nil {
		s.coverBox = s.px(l.Cover)
		side := min(s.coverBox.Dx(), s.coverBox.Dy())
		base := float64(side) / (1 + s.st.coverPulse)
		s.covers = make([]*image.RGBA, pulseLevels)
		for k := range s.covers {
			sz := int(math.Round(base * (1 + s.st.coverPulse*float64(k)/(pulseLevels-1))))
			sz = max(2, min(sz, side))
			img := scaleImage(in.Cover, sz, sz)
			roundCorners(img, float64(sz)*0.06)
			s.covers[k] = img
		}
	}
	align := l.Align
	if err := drawTextLine(s.static, s.px(l.Title), in.Title, "bold", s.st.text, align); err != nil {
		return fmt.Errorf("draw title: %w", err)
	}
	if err := drawTextLine(s.static, s.px(l.Artist), in.Artist, "regular", s.st.text, align); err != nil {
		return fmt.Errorf("draw artist: %w", err)
	}
	if in.Watermark {
		// Sized by the short edge so it is equally discreet in every format,
		// right-aligned on the bottom edge of the safe area.
		mh := int(math.Round(0.024 * float64(min(s.w, s.h))))
		right := int(math.Round((1 - SafeMargin) * float64(s.w)))
		bottom := int(math.Round((1 - SafeMargin) * float64(s.h)))
		wm := image.Rect(s.w/2, bottom-mh, right, bottom)
		if err := drawTextLine(s.static, wm, "made with Backbeat", "bold", color.RGBA{R: 255, G: 255, B: 255, A: 255}, "right"); err != nil {
			return fmt.Errorf("draw watermark: %w", err)
		}
	}
	if l.Progress != nil {
		s.progress = s.px(l.Progress)
		track := lerpRGBA(color.RGBA{R: 255, G: 255, B: 255, A: 255}, color.RGBA{A: 255}, 0.5)
		pr := s.progress
		fillRoundRect(s.static, float64(pr.Min.X), float64(pr.Min.Y), float64(pr.Max.X), float64(pr.Max.Y),
			float64(pr.Dy())/2, func(int) color.RGBA { return track })
	}
	if l.Bars != nil {
		s.bars = s.px(l.Bars)
		s.barRows = make([]color.RGBA, s.h)
		for y := s.bars.Min.Y; y < s.bars.Max.Y; y++ {
			t := float64(s.bars.Max.Y-1-y) / float64(max(1, s.bars.Dy()-1))
			s.barRows[y] = lerpRGBA(s.st.barBottom, s.st.barTop, t)
		}
	}
	return nil
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
	fr := s.an.Frames[s.analysisIndex(n)]
	if s.covers != nil {
		p := math.Min(1, math.Max(0, float64(fr.BeatPulse)))
		img := s.covers[int(math.Round(p*(pulseLevels-1)))]
		cx := s.coverBox.Min.X + s.coverBox.Dx()/2
		cy := s.coverBox.Min.Y + s.coverBox.Dy()/2
		blendOver(dst, img, cx-img.Rect.Dx()/2, cy-img.Rect.Dy()/2)
	}
	if !s.bars.Empty() {
		s.drawBars(dst, n)
	}
	if !s.progress.Empty() {
		pr := s.progress
		frac := float64(n+1) / float64(s.frames)
		x1 := float64(pr.Min.X) + math.Min(1, frac)*float64(pr.Dx())
		fillRoundRect(dst, float64(pr.Min.X), float64(pr.Min.Y), x1, float64(pr.Max.Y),
			float64(pr.Dy())/2, func(int) color.RGBA { return s.st.accent })
	}
}

func (s *Scene) drawBars(dst *image.RGBA, n int) {
	lv := s.BarLevels(n)
	b := s.tpl.Bars
	count := b.Count
	slot := float64(s.bars.Dx()) / float64(count)
	bw := slot * (1 - b.Gap)
	bottom := float64(s.bars.Max.Y)
	boxH := float64(s.bars.Dy())
	radius := 0.0
	if b.Rounded {
		radius = bw / 2
	}
	rowColor := func(y int) color.RGBA { return s.barRows[y] }
	for i := 0; i < count; i++ {
		j := i
		if b.Mirror {
			if i >= count/2 {
				j = i - count/2
			} else {
				j = (count-1)/2 - i
			}
		}
		height := math.Max(b.MinHeight, lv[j]) * boxH
		height = math.Max(height, bw) // keep a round dot when silent
		x0 := float64(s.bars.Min.X) + float64(i)*slot + slot*b.Gap/2
		fillRoundRect(dst, x0, bottom-height, x0+bw, bottom, radius, rowColor)
	}
}

// BarLevels returns the smoothed bar heights (0..1) at frame n: peak-hold
// with decay over the previous Hold frames, then a light spatial blur. It is
// a pure function of the analysis and n.
func (s *Scene) BarLevels(n int) []float64 {
	b := s.tpl.Bars
	out := make([]float64, s.nbars)
	decay := 1.0
	for k := 0; k <= b.Hold && n-k >= 0; k++ {
		fr := s.an.Frames[s.analysisIndex(n-k)]
		for j := range out {
			v := bandLevel(fr.Spectrum, j, s.nbars) * decay
			if v > out[j] {
				out[j] = v
			}
		}
		decay *= b.Decay
	}
	sm := make([]float64, len(out))
	for j := range out {
		l, r := out[max(j-1, 0)], out[min(j+1, len(out)-1)]
		sm[j] = math.Min(1, 0.25*l+0.5*out[j]+0.25*r)
	}
	return sm
}

// bandLevel resamples the spectrum to bar j of nbars: the mean of the bands
// under the bar, or linear interpolation when bars outnumber bands.
func bandLevel(spec []float32, j, nbars int) float64 {
	nb := len(spec)
	lo := float64(j) * float64(nb) / float64(nbars)
	hi := float64(j+1) * float64(nb) / float64(nbars)
	if hi-lo >= 1 {
		sum, cnt := 0.0, 0
		for k := int(lo); k < int(math.Ceil(hi)) && k < nb; k++ {
			sum += float64(spec[k])
			cnt++
		}
		return clamp01(sum / float64(cnt))
	}
	c := (lo+hi)/2 - 0.5
	k := int(math.Floor(c))
	t := c - float64(k)
	a := spec[min(max(k, 0), nb-1)]
	bb := spec[min(max(k+1, 0), nb-1)]
	return clamp01(float64(a)*(1-t) + float64(bb)*t)
}

func clamp01(v float64) float64 { return math.Min(1, math.Max(0, v)) }
