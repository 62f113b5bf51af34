package renderer

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goitalic"
	"golang.org/x/image/font/gofont/gomedium"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// fonts are parsed once per process: parsing is not free and the fonts never change.
var fonts = sync.OnceValues(func() (map[string]*opentype.Font, error) {
	out := map[string]*opentype.Font{}
	for name, ttf := range map[string][]byte{
		"bold": gobold.TTF, "regular": goregular.TTF, "medium": gomedium.TTF, "italic": goitalic.TTF, "mono": gomono.TTF,
	} {
		f, err := opentype.Parse(ttf)
		if err != nil {
			return nil, fmt.Errorf("parse %s font: %w", name, err)
		}
		out[name] = f
	}
	return out, nil
})

// minTextScale is how far a line may shrink below its box height before it
// is cut with an ellipsis instead.
const minTextScale = 0.6

// textStyle is how a text line looks.
type textStyle struct {
	font   string // a key of fonts; "" is bold
	color  color.NRGBA
	align  string // "left", "right" or centred
	upper  bool
	shadow color.NRGBA // drawn when its alpha is not zero
	// shadowDX and shadowDY offset the shadow in fractions of the box height.
	shadowDX, shadowDY float64
}

// drawTextLine draws one line of text inside box (pixels): the font is sized
// so ascent+descent fills the box height, shrunk until the line fits the box
// width and, below minTextScale, truncated with an ellipsis. Nothing is drawn
// outside the box, which the template keeps inside the safe area.
func drawTextLine(dst *image.RGBA, box image.Rectangle, text string, st textStyle) error {
	text = strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, text))
	if st.upper {
		text = strings.ToUpper(text)
	}
	box = box.Intersect(dst.Rect)
	if text == "" || box.Dx() <= 0 || box.Dy() <= 0 {
		return nil
	}
	fs, err := fonts()
	if err != nil {
		return err
	}
	if st.font == "" {
		st.font = "bold"
	}
	f, ok := fs[st.font]
	if !ok {
		return fmt.Errorf("unknown font %q", st.font)
	}
	boxH := float64(box.Dy())
	face, err := fitFace(f, boxH, 1)
	if err != nil {
		return err
	}
	width := font.MeasureString(face, text).Ceil()
	if width > box.Dx() {
		scale := max(float64(box.Dx())/float64(width), minTextScale)
		_ = face.Close()
		if face, err = fitFace(f, boxH, scale); err != nil {
			return err
		}
		for font.MeasureString(face, text).Ceil() > box.Dx() {
			rs := []rune(strings.TrimSuffix(text, "…"))
			if len(rs) <= 1 {
				break
			}
			text = strings.TrimRightFunc(string(rs[:len(rs)-1]), func(r rune) bool { return r == ' ' }) + "…"
		}
	}
	defer face.Close()
	m := face.Metrics()
	width = font.MeasureString(face, text).Ceil()
	x := box.Min.X
	switch st.align {
	case "left":
	case "right":
		x += box.Dx() - width
	default:
		x += (box.Dx() - width) / 2
	}
	// Centre the line vertically in the box.
	lineH := (m.Ascent + m.Descent).Ceil()
	baseline := box.Min.Y + (box.Dy()-lineH)/2 + m.Ascent.Ceil()
	// Clip to the box so a glyph overhang or shadow never leaves the safe area.
	clip := dst.SubImage(box).(*image.RGBA)
	type pass struct {
		dx, dy int
		c      color.NRGBA
	}
	passes := []pass{{0, 0, st.color}}
	if st.shadow.A > 0 {
		sdx := int(math.Round(st.shadowDX * boxH))
		sdy := int(math.Round(st.shadowDY * boxH))
		passes = []pass{{sdx, sdy, st.shadow}, {0, 0, st.color}}
	}
	for _, p := range passes {
		d := font.Drawer{
			Dst:  clip,
			Src:  image.NewUniform(p.c),
			Face: face,
			Dot:  fixed.P(x+p.dx, baseline+p.dy),
		}
		d.DrawString(text)
	}
	return nil
}

// fitFace returns a face whose ascent+descent is scale·boxH pixels.
func fitFace(f *opentype.Font, boxH, scale float64) (font.Face, error) {
	probe, err := opentype.NewFace(f, &opentype.FaceOptions{Size: boxH, DPI: 72, Hinting: font.HintingNone})
	if err != nil {
		return nil, fmt.Errorf("font face: %w", err)
	}
	m := probe.Metrics()
	_ = probe.Close()
	lineH := float64(m.Ascent+m.Descent) / 64
	size := boxH * boxH / lineH * scale
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, fmt.Errorf("font face: %w", err)
	}
	return face, nil
}
