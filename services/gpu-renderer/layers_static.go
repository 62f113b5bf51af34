package renderer

import (
	"fmt"
	"image"
	"image/color"
	"strings"

	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// Static layers (background, text, watermark) are drawn once per render,
// into the base frame or into a sprite; their cost does not depend on the
// video's length.

// drawStatic draws one static layer into dst within rect.
func (s *Scene) drawStatic(dst *image.RGBA, rect image.Rectangle, in SceneInput, pal *template.Palette, l *template.Layer) error {
	switch {
	case l.Background != nil:
		return s.drawBackground(dst, in, pal, l.Background)
	case l.Text != nil:
		t := l.Text
		col, err := pal.Color(t.Color, color.NRGBA{R: 255, G: 255, B: 255, A: 255})
		if err != nil {
			return err
		}
		style := textStyle{font: t.Font, color: col, align: t.Align, upper: t.Upper}
		if t.Shadow != nil {
			if style.shadow, err = pal.Color(t.Shadow.Color, color.NRGBA{A: 110}); err != nil {
				return err
			}
			style.shadowDX, style.shadowDY = t.Shadow.DX, t.Shadow.DY
		}
		text := strings.NewReplacer("{title}", in.Title, "{artist}", in.Artist).Replace(t.Text)
		return drawTextLine(dst, rect, text, style)
	case l.Watermark != nil:
		wm := l.Watermark
		col, err := pal.Color(wm.Color, color.NRGBA{R: 255, G: 255, B: 255, A: 230})
		if err != nil {
			return err
		}
		text := wm.Text
		if text == "" {
			text = "made with Backbeat"
		}
		return drawTextLine(dst, rect, text, textStyle{font: "bold", color: col, align: wm.Align,
			shadow: color.NRGBA{A: 110}, shadowDX: 0.04, shadowDY: 0.04})
	}
	return fmt.Errorf("not a static layer")
}

// drawBackground fills the frame from an image (blurred and darkened) or a
// gradient or a colour.
func (s *Scene) drawBackground(dst *image.RGBA, in SceneInput, pal *template.Palette, bg *template.BackgroundLayer) error {
	var img image.Image
	switch bg.Image {
	case "":
	case "cover":
		img = in.Cover
	default:
		img = in.Template.Image(bg.Image)
		if img == nil {
			return fmt.Errorf("image %q was not loaded with the template", bg.Image)
		}
	}
	if img != nil {
		b := backdrop(img, s.w, s.h, bg.Blur, bg.Darken)
		blendOver(dst, nil, b, 0, 0, dst.Rect)
		return nil
	}
	var stops []color.NRGBA
	if bg.Color != "" {
		c, err := pal.Color(bg.Color, color.NRGBA{})
		if err != nil {
			return err
		}
		stops = []color.NRGBA{c}
	}
	for _, g := range bg.Gradient {
		c, err := pal.Color(g, color.NRGBA{})
		if err != nil {
			return err
		}
		stops = append(stops, c)
	}
	fillBackground(dst, image.Rect(0, 0, s.w, s.h), stops, bg.Angle, bg.Radial)
	return nil
}
