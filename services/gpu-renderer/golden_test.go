package renderer

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/services/gpu-renderer/internal/yuv"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// update rewrites testdata/golden instead of comparing:
//
//	go test ./services/gpu-renderer -run TestGolden -update
var update = flag.Bool("update", false, "rewrite the golden PNGs in testdata/golden")

// Golden tolerance: rendering is integer and float64 arithmetic that should
// match bit for bit on one platform, but fused multiply-add (arm64) or a new
// x/image version may move anti-aliased edges by a step. A frame passes when
// the mean absolute difference per channel is at most goldenMeanDiff and at
// most goldenBadShare of the pixels differ by more than goldenBadDiff.
const (
	goldenMeanDiff = 1.0
	goldenBadDiff  = 16
	goldenBadShare = 0.005
)

// goldenFrames are the frames each strip shows: the start, a beat, between
// beats, late in the video.
var goldenFrames = []int{0, 15, 22, 58}

// TestGolden draws a strip of frames of every built-in template in every
// format at a quarter of the full size and compares it with the PNG in
// testdata/golden.
func TestGolden(t *testing.T) {
	t.Parallel()
	for _, tpl := range template.BuiltinTemplates() {
		for _, layout := range template.Layouts {
			t.Run(tpl.Name+"/"+layout, func(t *testing.T) {
				t.Parallel()
				w, h, err := template.FrameSize(layout)
				require.NoError(t, err)
				s := testScene(t, tpl, layout, w/4, h/4)
				strip := image.NewRGBA(image.Rect(0, 0, len(goldenFrames)*w/4, h/4))
				frame := s.NewFrame()
				for i, n := range goldenFrames {
					s.Compose(frame, n)
					for y := 0; y < h/4; y++ {
						copy(strip.Pix[strip.PixOffset(i*w/4, y):], frame.Pix[y*frame.Stride:(y+1)*frame.Stride])
					}
				}
				path := filepath.Join("testdata", "golden", tpl.Name+"-"+layout+".png")
				if *update {
					require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
					var buf bytes.Buffer
					require.NoError(t, (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, strip))
					require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
					return
				}
				f, err := os.Open(path)
				require.NoError(t, err, "missing golden file: run go test -run TestGolden -update")
				defer f.Close()
				want, err := png.Decode(f)
				require.NoError(t, err)
				mean, bad := imageDiff(t, want, strip)
				require.LessOrEqual(t, mean, goldenMeanDiff, "%s: mean abs diff", path)
				require.LessOrEqual(t, bad, goldenBadShare, "%s: share of pixels off by more than %d", path, goldenBadDiff)
			})
		}
	}
}

// imageDiff returns the mean absolute difference per channel and the share
// of pixels with a channel differing by more than goldenBadDiff.
func imageDiff(t *testing.T, want image.Image, got *image.RGBA) (mean, badShare float64) {
	t.Helper()
	require.Equal(t, want.Bounds().Size(), got.Rect.Size(), "golden size")
	b := want.Bounds()
	var sum, bad, n float64
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			r, g, bl, _ := want.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := got.PixOffset(x, y)
			worst := 0.0
			for c, v := range []uint32{r >> 8, g >> 8, bl >> 8} {
				d := float64(v) - float64(got.Pix[i+c])
				if d < 0 {
					d = -d
				}
				sum += d
				worst = max(worst, d)
			}
			if worst > goldenBadDiff {
				bad++
			}
			n++
		}
	}
	return sum / (3 * n), bad / n
}

// TestFrameRangeIdentity: frames 17..29 rendered alone are byte for byte the
// same raw YUV as inside a full render, for every template, SDR and HDR.
func TestFrameRangeIdentity(t *testing.T) {
	t.Parallel()
	for _, tpl := range template.BuiltinTemplates() {
		for _, hdr := range []bool{false, true} {
			job := Job{
				Scene: SceneInput{Template: tpl, Layout: template.LayoutPortrait, Width: 72, Height: 128,
					Analysis: testAnalysis(2, 30, 32), Cover: testCover(), Title: "Night Drive", Artist: "The Testers", Watermark: true},
				Encoding: Encoding{FPS: 30, HDR: hdr, Concurrency: 3},
				Duration: 2,
			}
			r := NewRenderer(nil, nil)
			var full, part bytes.Buffer
			res, err := r.RenderRaw(context.Background(), job, 0, 0, &full)
			require.NoError(t, err)
			require.Equal(t, 60, res.Frames)
			_, err = r.RenderRaw(context.Background(), job, 17, 30, &part)
			require.NoError(t, err)
			size := yuv.FrameSize(72, 128, hdr)
			require.Equal(t, 60*size, full.Len())
			require.Equal(t, 13*size, part.Len())
			require.True(t, bytes.Equal(full.Bytes()[17*size:30*size], part.Bytes()), "%s hdr=%v", tpl.Name, hdr)
		}
	}
}
