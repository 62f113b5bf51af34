package renderer

import (
	"fmt"
	"image"
	"image/color"

	xdraw "golang.org/x/image/draw"

	"github.com/backbeat/backbeat/pkg/analysis"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// ContactSheetFPS is the frame rate ContactSheet composes at.
const ContactSheetFPS = 30

// ContactSheet draws frames of a template at the given times (seconds) in
// every format, one row per format, each frame rendered at full size and
// shrunk by scale; it is how docs/templates shows what a template looks like.
// The analysis an is at ContactSheetFPS and must reach past the last time
// (cmd/contact-sheet passes rendertest.SyntheticAnalysis).
func ContactSheet(tpl *template.Template, an *analysis.Analysis, times []float64, scale float64, title, artist string, cover image.Image) (*image.RGBA, error) {
	const fps, gap, header = ContactSheetFPS, 12, 44
	end := 0.0
	for _, t := range times {
		end = max(end, t)
	}
	type cell struct{ w, h int }
	var rows []cell
	width, height := gap, header
	for _, layout := range template.Layouts {
		w, h, err := template.FrameSize(layout)
		if err != nil {
			return nil, err
		}
		c := cell{int(float64(w) * scale), int(float64(h) * scale)}
		rows = append(rows, c)
		width = max(width, gap+len(times)*(c.w+gap))
		height += c.h + gap
	}
	sheet := image.NewRGBA(image.Rect(0, 0, width, height))
	fillBackground(sheet, sheet.Rect, []color.NRGBA{{R: 24, G: 24, B: 28, A: 255}}, 0, false)
	label := fmt.Sprintf("%s — %s", tpl.Name, tpl.Description)
	if err := drawTextLine(sheet, image.Rect(gap, 10, width-gap, header-10), label,
		textStyle{font: "medium", color: color.NRGBA{R: 230, G: 230, B: 230, A: 255}, align: "left"}); err != nil {
		return nil, err
	}
	y := header
	for i, layout := range template.Layouts {
		s, err := NewScene(SceneInput{Template: tpl, Layout: layout, FPS: fps, Frames: int((end + 1) * fps),
			Analysis: an, Cover: cover, Title: title, Artist: artist, Watermark: true})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", layout, err)
		}
		frame := s.NewFrame()
		x := gap
		for _, t := range times {
			s.Compose(frame, int(t*fps))
			dst := image.Rect(x, y, x+rows[i].w, y+rows[i].h)
			xdraw.CatmullRom.Scale(sheet, dst, frame, frame.Rect, xdraw.Src, nil)
			x += rows[i].w + gap
		}
		y += rows[i].h + gap
	}
	return sheet, nil
}
