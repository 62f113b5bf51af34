package renderer

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/services/gpu-renderer/internal/yuv"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// builtin returns a fresh copy of a built-in template.
func builtin(t testing.TB, name string) *template.Template {
	t.Helper()
	for _, tpl := range template.BuiltinTemplates() {
		if tpl.Name == name {
			return tpl
		}
	}
	t.Fatalf("no built-in template %q", name)
	return nil
}

func testScene(t testing.TB, tpl *template.Template, layout string, w, h int) *Scene {
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
// sequence into a reused buffer, from a fresh scene too; and the renderer's
// dirty-rectangle YUV path equals converting the whole composed frame.
func TestFrameDeterminism(t *testing.T) {
	t.Parallel()
	for _, tpl := range template.BuiltinTemplates() {
		for _, layout := range template.Layouts {
			w, h, err := template.FrameSize(layout)
			require.NoError(t, err)
			w, h = w/6&^1, h/6&^1
			s := testScene(t, tpl, layout, w, h)
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
			require.Equal(t, alone.Pix, at17, "%s/%s", tpl.Name, layout)

			again := testScene(t, tpl, layout, w, h)
			img := again.NewFrame()
			again.Compose(img, 17)
			require.Equal(t, alone.Pix, img.Pix, "%s/%s", tpl.Name, layout)

			for _, hdr := range []bool{false, true} {
				// One composer and two recycled buffers, as a render worker
				// uses them, in an order that revisits frames and keys.
				c := s.newComposer()
				bufs := []*yuvFrame{s.newYUVFrame(hdr), s.newYUVFrame(hdr)}
				for i, n := range []int{0, 17, 59, 3, 4, 17, 40, 0, 59, 22} {
					want := make([]byte, yuv.FrameSize(w, h, hdr))
					s.Compose(img, n)
					if hdr {
						yuv.ToYUV420P10(want, img)
					} else {
						yuv.ToYUV420(want, img)
					}
					got := bufs[i%2]
					c.compose(got, n, hdr)
					require.True(t, bytes.Equal(want, got.b), "%s/%s frame %d hdr %v: incremental YUV differs", tpl.Name, layout, n, hdr)
					fresh := make([]byte, len(want))
					s.composeYUV(fresh, n, hdr)
					require.True(t, bytes.Equal(want, fresh), "%s/%s frame %d hdr %v: fresh YUV differs", tpl.Name, layout, n, hdr)
				}
			}
		}
	}
}

func TestFramesDiffer(t *testing.T) {
	t.Parallel()
	for _, tpl := range template.BuiltinTemplates() {
		s := testScene(t, tpl, template.LayoutPortrait, 108, 192)
		a, b := s.NewFrame(), s.NewFrame()
		s.Compose(a, 0)
		s.Compose(b, 40)
		require.NotEqual(t, a.Pix, b.Pix, "%s: layers move", tpl.Name)
	}
}

// TestElementsInSafeArea: with and without cover art, in every format,
// pixels outside the 5% margins are the background's only.
func TestElementsInSafeArea(t *testing.T) {
	t.Parallel()
	for _, tpl := range template.BuiltinTemplates() {
		for _, layout := range template.Layouts {
			for _, withCover := range []bool{true, false} {
				w, h, err := template.FrameSize(layout)
				require.NoError(t, err)
				w, h = w/4, h/4
				in := SceneInput{Template: tpl, Layout: layout, Width: w, Height: h, FPS: 30, Frames: 60,
					Analysis: testAnalysis(2, 30, 32), Title: "A very long title that will not fit on one line at all",
					Artist: "Someone with a long name too", Watermark: true}
				if withCover {
					in.Cover = testCover()
				}
				bare := in
				bare.Watermark = false
				bare.Template = &template.Template{Name: "bare", Settings: tpl.Settings}
				for _, l := range tpl.Layers {
					if l.Background != nil {
						bare.Template.Layers = append(bare.Template.Layers, l)
					}
				}
				full, err := NewScene(in)
				require.NoError(t, err)
				empty, err := NewScene(bare)
				require.NoError(t, err)
				a, b := full.NewFrame(), empty.NewFrame()
				for _, n := range []int{0, 25, 59} {
					full.Compose(a, n)
					empty.Compose(b, n)
					requireSameOutside(t, a, b, fmt.Sprintf("%s/%s cover=%v frame %d", tpl.Name, layout, withCover, n))
				}
			}
		}
	}
}

func requireSameOutside(t *testing.T, a, b *image.RGBA, what string) {
	t.Helper()
	w, h := a.Rect.Dx(), a.Rect.Dy()
	mx, my := int(template.SafeMargin*float64(w)), int(template.SafeMargin*float64(h))
	safe := image.Rect(mx, my, w-mx, h-my)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if (image.Point{X: x, Y: y}).In(safe) {
				continue
			}
			i := y*a.Stride + x*4
			if !bytes.Equal(a.Pix[i:i+4], b.Pix[i:i+4]) {
				t.Fatalf("%s: pixel %d,%d outside the safe area was drawn", what, x, y)
			}
		}
	}
}

// TestNoCoverDrawsSomething: templates with cover layers still fill the
// frame when a video has no cover art (their no_cover layers or the rest).
func TestNoCoverDrawsSomething(t *testing.T) {
	t.Parallel()
	for _, tpl := range template.BuiltinTemplates() {
		s, err := NewScene(SceneInput{Template: tpl, Layout: template.LayoutSquare, Width: 120, Height: 120, FPS: 30, Frames: 30,
			Analysis: testAnalysis(1, 30, 16), Title: "T", Artist: "A"})
		require.NoError(t, err)
		img := s.NewFrame()
		s.Compose(img, 10)
		require.NotEmpty(t, s.layers, tpl.Name)
	}
}

// TestSceneRefusesBadSetting: a setting override that does not parse fails
// the scene with the setting's name (the palette itself is tested in
// package template).
func TestSceneRefusesBadSetting(t *testing.T) {
	t.Parallel()
	_, err := NewScene(SceneInput{Template: builtin(t, "spectrum"), Layout: template.LayoutSquare, Width: 64, Height: 64,
		FPS: 30, Frames: 30, Analysis: testAnalysis(1, 30, 16), Settings: map[string]string{template.SettingBarColor: "pink"}})
	require.ErrorContains(t, err, "bar_color")
}

func TestSubtractSpans(t *testing.T) {
	t.Parallel()
	a := []span{{0, 10}, {20, 30}, {40, 50}}
	b := []span{{2, 4}, {8, 22}, {28, 42}, {60, 70}}
	require.Equal(t, []span{{0, 2}, {4, 8}, {22, 28}, {42, 50}}, subtractSpans(nil, a, b))
	require.Equal(t, a, subtractSpans(nil, a, nil))
	require.Empty(t, subtractSpans(nil, a, []span{{0, 50}}))
	require.Empty(t, subtractSpans(nil, nil, b))
}

// TestIncrementalPaths: the built-in templates exercise every path of the
// incremental composer (a keyed rectangle, an occluded one), so
// TestFrameDeterminism checks them all.
func TestIncrementalPaths(t *testing.T) {
	t.Parallel()
	keyed, occluded := 0, 0
	for _, name := range []string{"spectrum", "halo", "tide"} {
		s := testScene(t, builtin(t, name), template.LayoutSquare, 180, 180)
		for _, d := range s.dirty {
			if d.keyed != nil {
				keyed++
			}
			if d.occ != nil {
				occluded++
				cores := 0
				for _, sp := range d.occ.cores[0] {
					if sp.lo < sp.hi {
						cores++
					}
				}
				require.Positive(t, cores, "%s: occluder without an opaque core", name)
			}
		}
	}
	require.Positive(t, keyed)
	require.Positive(t, occluded)
}

// TestIncrementalFullSize: at full size (where the 16-pixel compare chunks
// and the cover's cores are as in a real render), a worker's recycled
// buffers match converting the whole composed frame.
func TestIncrementalFullSize(t *testing.T) {
	t.Parallel()
	for _, tpl := range template.BuiltinTemplates() {
		s := testScene(t, tpl, template.LayoutSquare, 0, 0)
		c := s.newComposer()
		bufs := []*yuvFrame{s.newYUVFrame(false), s.newYUVFrame(false)}
		img := s.NewFrame()
		want := make([]byte, yuv.FrameSize(s.w, s.h, false))
		for i, n := range []int{0, 15, 22, 58, 1, 30, 22, 7} {
			s.Compose(img, n)
			yuv.ToYUV420(want, img)
			c.compose(bufs[i%2], n, false)
			require.True(t, bytes.Equal(want, bufs[i%2].b), "%s frame %d", tpl.Name, n)
		}
	}
}

// TestBlendPixelExact checks the word-at-a-time blend against the
// per-channel formula for every coverage and colour alpha, over many
// colours and backgrounds.
func TestBlendPixelExact(t *testing.T) {
	t.Parallel()
	dst := image.NewRGBA(image.Rect(0, 0, 1, 1))
	div := func(x uint32) uint8 { return uint8((x + 127) / 255) }
	for k := 0; k < 600; k++ {
		h := splitmix(uint64(k))
		c := color.NRGBA{R: uint8(h), G: uint8(h >> 8), B: uint8(h >> 16), A: uint8(h >> 24)}
		if k%3 == 0 {
			c.A = 255
		}
		bg := [4]uint8{uint8(h >> 32), uint8(h >> 40), uint8(h >> 48), uint8(h >> 56)}
		for a := uint32(0); a <= 255; a++ {
			copy(dst.Pix, bg[:])
			blendPixel(dst, 0, c, a)
			aa := a
			if c.A != 255 {
				aa = (a*uint32(c.A) + 127) / 255
			}
			want := []uint8{c.R, c.G, c.B, 255}
			if aa < 255 {
				na := 255 - aa
				want = []uint8{div(uint32(c.R)*aa + uint32(bg[0])*na), div(uint32(c.G)*aa + uint32(bg[1])*na),
					div(uint32(c.B)*aa + uint32(bg[2])*na), div(255*aa + uint32(bg[3])*na)}
			}
			require.Equal(t, want, dst.Pix, "colour %v over %v at coverage %d", c, bg, a)
		}
	}
}
