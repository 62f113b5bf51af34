package renderer

import (
	"testing"
)

// benchCompose measures one full-size frame of a template as the renderer
// makes it: compose the per-frame layers and convert them to 8-bit YUV in a
// recycled buffer that already holds the static base.
func benchCompose(b *testing.B, name, layout string) {
	s := testScene(b, builtin(b, name), layout, 0, 0)
	c := s.newComposer()
	buf := s.newYUVFrame(false)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c.compose(buf, i%60, false)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkCompose reports the compositor's frames per second per template
// and format on one core (scripts/bench/render.sh prints it).
func BenchmarkCompose(b *testing.B) {
	for _, tpl := range BuiltinTemplates() {
		for _, layout := range Layouts {
			b.Run(tpl.Name+"/"+layout, func(b *testing.B) { benchCompose(b, tpl.Name, layout) })
		}
	}
}

// BenchmarkComposeFullFrame is the naive path for comparison: draw the whole
// frame and convert all of it.
func BenchmarkComposeFullFrame(b *testing.B) {
	s := testScene(b, builtin(b, "spectrum"), LayoutSquare, 0, 0)
	img := s.NewFrame()
	buf := make([]byte, yuvFrameSize(1080, 1080, false))
	for i := 0; b.Loop(); i++ {
		s.Compose(img, i%60)
		toYUV420(buf, img)
	}
}

// BenchmarkYUV420P10Square measures the HDR conversion of a whole frame.
func BenchmarkYUV420P10Square(b *testing.B) {
	s := testScene(b, builtin(b, "spectrum"), LayoutSquare, 0, 0)
	img := s.NewFrame()
	s.Compose(img, 10)
	buf := make([]byte, yuvFrameSize(1080, 1080, true))
	for b.Loop() {
		toYUV420P10(buf, img)
	}
}
