package renderer

import (
	"testing"

	"github.com/backbeat/backbeat/services/gpu-renderer/internal/yuv"
	"github.com/backbeat/backbeat/services/gpu-renderer/rendertest"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// benchFrames is the length of the compositor benchmark's video: the 30 s
// of the full-render benchmark (scripts/bench/render.sh), whose frames it
// composes in order, as a render does.
const benchFrames = 30 * 30

// benchCompose measures one full-size frame of a template as the renderer
// makes it: compose the per-frame layers and convert them to 8-bit YUV in a
// recycled buffer that already holds the static base. The inputs are those
// of render-bench: the synthetic analysis and the sample cover.
func benchCompose(b *testing.B, name, layout string) { benchComposeEvicting(b, name, layout, nil) }

// benchComposeEvicting is benchCompose with two output buffers taken in
// turn, as the renderer's vmsplice sink does, and, when evict is not nil,
// every byte of evict written between frames, untimed.
func benchComposeEvicting(b *testing.B, name, layout string, evict []byte) {
	s, err := NewScene(SceneInput{
		Template: builtin(b, name), Layout: layout, FPS: 30, Frames: benchFrames,
		Analysis: rendertest.SyntheticAnalysis(benchFrames/30, 30, 48), Cover: rendertest.SampleCover(),
		Title: "Night Drive", Artist: "The Testers", Watermark: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	c := s.newComposer()
	bufs := []*yuvFrame{s.newYUVFrame(false)}
	if evict != nil {
		bufs = append(bufs, s.newYUVFrame(false))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if evict != nil {
			b.StopTimer()
			for j := 0; j < len(evict); j += 64 {
				evict[j]++
			}
			b.StartTimer()
		}
		c.compose(bufs[i%len(bufs)], i%benchFrames, false)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkCompose reports the compositor's frames per second per template
// and format on one core (scripts/bench/render.sh prints it).
func BenchmarkCompose(b *testing.B) {
	for _, tpl := range template.BuiltinTemplates() {
		for _, layout := range template.Layouts {
			b.Run(tpl.Name+"/"+layout, func(b *testing.B) { benchCompose(b, tpl.Name, layout) })
		}
	}
}

// BenchmarkComposeCold is BenchmarkCompose (square) with the caches
// emptied before every frame, by writing 64 MiB, twice the last-level cache
// of the benchmark machine. It stands in for a render, where frames are
// composed in the encoder's gaps on cores whose caches x264 has just
// filled (docs/benchmarks.md, round 5, has the cold and warm figures).
func BenchmarkComposeCold(b *testing.B) {
	evict := make([]byte, 64<<20)
	for _, tpl := range template.BuiltinTemplates() {
		b.Run(tpl.Name, func(b *testing.B) { benchComposeEvicting(b, tpl.Name, template.LayoutSquare, evict) })
	}
}

// BenchmarkComposeFullFrame is the naive path for comparison: draw the whole
// frame and convert all of it.
func BenchmarkComposeFullFrame(b *testing.B) {
	s := testScene(b, builtin(b, "spectrum"), template.LayoutSquare, 0, 0)
	img := s.NewFrame()
	buf := make([]byte, yuv.FrameSize(1080, 1080, false))
	for i := 0; b.Loop(); i++ {
		s.Compose(img, i%60)
		yuv.ToYUV420(buf, img)
	}
}

// BenchmarkYUV420P10Square measures the HDR conversion of a whole frame.
func BenchmarkYUV420P10Square(b *testing.B) {
	s := testScene(b, builtin(b, "spectrum"), template.LayoutSquare, 0, 0)
	img := s.NewFrame()
	s.Compose(img, 10)
	buf := make([]byte, yuv.FrameSize(1080, 1080, true))
	for b.Loop() {
		yuv.ToYUV420P10(buf, img)
	}
}

// BenchmarkYUV420Square converts a whole composed 1080×1080 frame to 8-bit
// YUV: the per-render cost of the static base, and the per-pixel cost of
// every dirty span.
func BenchmarkYUV420Square(b *testing.B) {
	s := testScene(b, builtin(b, "spectrum"), template.LayoutSquare, 0, 0)
	img := s.NewFrame()
	s.Compose(img, 10)
	buf := make([]byte, yuv.FrameSize(1080, 1080, false))
	b.SetBytes(int64(len(img.Pix)))
	for b.Loop() {
		yuv.ToYUV420(buf, img)
	}
}
