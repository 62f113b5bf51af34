package renderer

import (
	"bytes"
	"encoding/json"
	"image"
	"testing"

	"github.com/stretchr/testify/require"
)

func testScene(t testing.TB, tpl *Template, layout string, w, h int) *Scene {
	t.Helper()
	s, err := NewScene(SceneInput{
		Template: tpl, Layout: layout, Width: w, Height: h, FPS: 30, Frames: 60,
		Analysis: testAnalysis(2, 30, 32), Cover: testCover(),
		Title: "Night Drive", Artist: "The Testers", Watermark: true,
	})
	require.NoError(t, err)
	return s
}

// TestFrameDeterminism: frame 17 drawn alone equals frame 17 drawn in a
// sequence into a reused buffer, and its YUV bytes match too.
func TestFrameDeterminism(t *testing.T) {
	t.Parallel()
	for _, tpl := range []*Template{Spectrum(), Minimal()} {
		s := testScene(t, tpl, LayoutSquare, 240, 240)
		alone := s.NewFrame()
		s.Compose(alone, 17)

		seq := s.NewFrame()
		var at17 []byte
		for n := 0; n < 30; n++ {
			s.Compose(seq, n)
			if n == 17 {
				at17 = append([]byte(nil), seq.Pix...)
			}
		}
		require.Equal(t, alone.Pix, at17, tpl.Name)

		// A fresh scene from the same inputs draws the same frame.
		again := testScene(t, tpl, LayoutSquare, 240, 240)
		img := again.NewFrame()
		again.Compose(img, 17)
		require.Equal(t, alone.Pix, img.Pix, tpl.Name)

		a, b := make([]byte, yuvFrameSize(240, 240, false)), make([]byte, yuvFrameSize(240, 240, false))
		toYUV420(a, alone)
		toYUV420(b, img)
		require.Equal(t, a, b)
	}
}

func TestFramesDiffer(t *testing.T) {
	t.Parallel()
	s := testScene(t, Spectrum(), LayoutPortrait, 108, 192)
	a, b := s.NewFrame(), s.NewFrame()
	s.Compose(a, 0)
	s.Compose(b, 40)
	require.NotEqual(t, a.Pix, b.Pix, "bars, pulse and progress move")
}

// TestElementsInSafeArea: pixels outside the 5% margins are the background only.
func TestElementsInSafeArea(t *testing.T) {
	t.Parallel()
	for _, tpl := range []*Template{Spectrum(), Minimal()} {
		for _, l := range []string{LayoutSquare, LayoutPortrait, LayoutLandscape} {
			w, h, err := FrameSize(l)
			require.NoError(t, err)
			w, h = w/4, h/4
			in := SceneInput{Template: tpl, Layout: l, Width: w, Height: h, FPS: 30, Frames: 60,
				Analysis: testAnalysis(2, 30, 32), Title: "A very long title that will not fit on one line at all", Artist: "Someone", Watermark: true}
			bare := in
			bare.Title, bare.Artist, bare.Watermark = "", "", false
			bare.Template = &Template{Name: "bare", Settings: tpl.Settings, Background: tpl.Background, Bars: tpl.Bars,
				Layouts: map[string]Layout{l: {}}}
			full, err := NewScene(in)
			require.NoError(t, err)
			empty, err := NewScene(bare)
			require.NoError(t, err)
			a, b := full.NewFrame(), empty.NewFrame()
			full.Compose(a, 59)
			empty.Compose(b, 59)
			mx, my := int(SafeMargin*float64(w)), int(SafeMargin*float64(h))
			safe := image.Rect(mx, my, w-mx, h-my)
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					if (image.Point{X: x, Y: y}).In(safe) {
						continue
					}
					i := y*a.Stride + x*4
					require.Equal(t, b.Pix[i:i+4], a.Pix[i:i+4], "%s/%s pixel %d,%d outside safe area", tpl.Name, l, x, y)
				}
			}
		}
	}
}

func TestTemplateJSONRoundTrip(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Spectrum())
	require.NoError(t, err)
	got, err := ParseTemplate(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, Spectrum(), got)

	bad := Spectrum()
	bad.Layouts[LayoutSquare].Title.X = 0.01
	b, err = json.Marshal(bad)
	require.NoError(t, err)
	_, err = ParseTemplate(bytes.NewReader(b))
	require.ErrorContains(t, err, "safe area")
}

func TestBuiltinLookup(t *testing.T) {
	t.Parallel()
	r := Builtin()
	require.Equal(t, []string{"minimal", "spectrum"}, r.Names())
	_, err := r.Lookup("spectrum")
	require.NoError(t, err)
	_, err = r.Lookup("vaporwave")
	require.ErrorIs(t, err, ErrUnknownTemplate)
}

func TestSettingsOverride(t *testing.T) {
	t.Parallel()
	st, err := parseSettings(Spectrum().Settings, map[string]string{SettingBarColor: "#00ff00", "unknown_knob": "x"})
	require.NoError(t, err)
	require.Equal(t, uint8(255), st.barBottom.G)
	require.Equal(t, uint8(0), st.barBottom.R)
	_, err = parseSettings(nil, map[string]string{SettingCoverPulse: "2"})
	require.Error(t, err)
}

func TestYUVKnownColours(t *testing.T) {
	t.Parallel()
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = 255, 255, 255, 255
	}
	buf := make([]byte, yuvFrameSize(2, 2, false))
	toYUV420(buf, img)
	require.Equal(t, []byte{235, 235, 235, 235, 128, 128}, buf)
	for i := range img.Pix {
		if i%4 != 3 {
			img.Pix[i] = 0
		}
	}
	toYUV420(buf, img)
	require.Equal(t, []byte{16, 16, 16, 16, 128, 128}, buf)

	// HDR black is code 64, neutral chroma 512.
	hb := make([]byte, yuvFrameSize(2, 2, true))
	toYUV420P10(hb, img)
	require.Equal(t, []byte{64, 0, 64, 0, 64, 0, 64, 0, 0, 2, 0, 2}, hb)
}

func benchCompose(b *testing.B, layout string) {
	s := testScene(b, Spectrum(), layout, 0, 0)
	img := s.NewFrame()
	w, h := s.Size()
	buf := make([]byte, yuvFrameSize(w, h, false))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s.Compose(img, i%60)
		toYUV420(buf, img)
	}
}

// BenchmarkComposeSquare measures one 1080×1080 frame: compose and convert to YUV.
func BenchmarkComposeSquare(b *testing.B) { benchCompose(b, LayoutSquare) }

// BenchmarkComposePortrait measures one 1080×1920 frame.
func BenchmarkComposePortrait(b *testing.B) { benchCompose(b, LayoutPortrait) }

// BenchmarkComposeLandscape measures one 1920×1080 frame.
func BenchmarkComposeLandscape(b *testing.B) { benchCompose(b, LayoutLandscape) }

// BenchmarkYUV420P10Square measures the HDR conversion alone.
func BenchmarkYUV420P10Square(b *testing.B) {
	s := testScene(b, Spectrum(), LayoutSquare, 0, 0)
	img := s.NewFrame()
	s.Compose(img, 10)
	buf := make([]byte, yuvFrameSize(1080, 1080, true))
	b.ResetTimer()
	for b.Loop() {
		toYUV420P10(buf, img)
	}
}
