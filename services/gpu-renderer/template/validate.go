package template

import (
	"fmt"
	"path/filepath"
	"strings"
)

// fieldErr is a validation error that names the field in the template's
// JSON, e.g. "layers[2].bars.count: must be 1..256 (got 300)", so a template
// author finds the mistake without reading Go.
func fieldErr(path, format string, args ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
}

// Validate checks a template before any frame is drawn: one kind per layer,
// every value in range, a box for every format inside the safe area, and
// every colour and setting reference resolvable.
func (t *Template) Validate() error {
	if err := t.validate(); err != nil {
		return fmt.Errorf("template %q: %w", t.Name, err)
	}
	return nil
}

func (t *Template) validate() error {
	if t.Name == "" {
		return fieldErr("name", "must not be empty")
	}
	for _, r := range t.Name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fieldErr("name", "%q: use a-z, 0-9, - and _", t.Name)
		}
	}
	if err := validateSettings(t.Settings); err != nil {
		return err
	}
	if len(t.Layers) == 0 {
		return fieldErr("layers", "must not be empty")
	}
	if len(t.Layers) > 32 {
		return fieldErr("layers", "at most 32 layers (got %d)", len(t.Layers))
	}
	for i := range t.Layers {
		if err := t.validateLayer(fmt.Sprintf("layers[%d]", i), &t.Layers[i]); err != nil {
			return err
		}
	}
	return nil
}

func (t *Template) validateLayer(p string, l *Layer) error {
	if l.kinds() != 1 {
		return fieldErr(p, "set exactly one of background, cover, bars, waveform, rings, particles, text, progress, watermark")
	}
	if l.When != "" && l.When != "cover" && l.When != "no_cover" {
		return fieldErr(p+".when", "%q: want \"cover\" or \"no_cover\"", l.When)
	}
	kind, _ := l.Kind()
	if kind == "background" {
		if l.Box != nil {
			return fieldErr(p+".box", "a background fills the frame; remove the box")
		}
	} else {
		if l.Box == nil {
			return fieldErr(p+".box", "missing: a %s layer needs a box per format", kind)
		}
		for _, name := range Layouts {
			b := l.Box.For(name)
			if b == nil {
				return fieldErr(p+".box."+name, "missing: every layer must work in every format")
			}
			if err := b.inSafeArea(); err != nil {
				return fieldErr(p+".box."+name, "%v", err)
			}
		}
	}
	c := colorChecker{t: t}
	p += "." + kind
	switch kind {
	case "background":
		return t.validateBackground(p, l.Background, c)
	case "cover":
		v := l.Cover
		return firstErr(
			rangeErr(p+".pulse", v.Pulse, 0, 0.3),
			oneOf(p+".shape", v.Shape, "", "rounded", "square", "circle"),
			rangeErr(p+".radius", v.Radius, 0, 0.5))
	case "bars":
		v := l.Bars
		if v.Count < 1 || v.Count > 256 {
			return fieldErr(p+".count", "must be 1..256 (got %d)", v.Count)
		}
		if v.Hold < 0 || v.Hold > 60 {
			return fieldErr(p+".hold", "must be 0..60 (got %d)", v.Hold)
		}
		inner := error(nil)
		if v.Style == "circular" {
			inner = rangeErr(p+".inner", v.Inner, 0.1, 0.9)
		}
		return firstErr(
			oneOf(p+".style", v.Style, "linear", "mirrored", "circular"),
			oneOf(p+".anchor", v.Anchor, "", "bottom", "center"),
			rangeErr(p+".gap", v.Gap, 0, 0.9),
			rangeErr(p+".min_height", v.MinHeight, 0, 0.5),
			rangeErr(p+".decay", v.Decay, 0, 1),
			inner,
			c.check(p+".color", v.Color, true),
			c.check(p+".color_top", v.ColorTop, false))
	case "waveform":
		v := l.Waveform
		return firstErr(rangeErr(p+".window", v.Window, 0.5, 20),
			c.check(p+".color", v.Color, true), c.check(p+".color_top", v.ColorTop, false))
	case "rings":
		v := l.Rings
		err := firstErr(rangeErr(p+".life", v.Life, 0.1, 5),
			rangeErr(p+".thickness", v.Thickness, 0.002, 0.2),
			rangeErr(p+".min_radius", v.MinRadius, 0, 1),
			rangeErr(p+".max_radius", v.MaxRadius, 0.05, 1),
			c.check(p+".color", v.Color, true))
		if err == nil && v.MaxRadius <= v.MinRadius {
			err = fieldErr(p+".max_radius", "must exceed min_radius")
		}
		return err
	case "particles":
		v := l.Particles
		if v.Count < 1 || v.Count > 2000 {
			return fieldErr(p+".count", "must be 1..2000 (got %d)", v.Count)
		}
		return firstErr(rangeErr(p+".size", v.Size, 0.001, 0.03),
			rangeErr(p+".speed", v.Speed, 0, 2),
			oneOf(p+".direction", v.Direction, "", "up", "out"),
			c.check(p+".color", v.Color, true))
	case "text":
		v := l.Text
		if strings.TrimSpace(v.Text) == "" {
			return fieldErr(p+".text", "must not be empty")
		}
		err := firstErr(oneOf(p+".font", v.Font, "", "regular", "bold", "medium", "italic", "mono"),
			oneOf(p+".align", v.Align, "", "center", "left", "right"),
			c.check(p+".color", v.Color, true))
		if err == nil && v.Shadow != nil {
			err = firstErr(rangeErr(p+".shadow.dx", v.Shadow.DX, -0.3, 0.3),
				rangeErr(p+".shadow.dy", v.Shadow.DY, -0.3, 0.3),
				c.check(p+".shadow.color", v.Shadow.Color, true))
		}
		return err
	case "progress":
		return firstErr(c.check(p+".color", l.Progress.Color, true), c.check(p+".track", l.Progress.Track, false))
	case "watermark":
		return firstErr(oneOf(p+".align", l.Watermark.Align, "", "center", "left", "right"),
			c.check(p+".color", l.Watermark.Color, false))
	}
	return nil
}

func (t *Template) validateBackground(p string, v *BackgroundLayer, c colorChecker) error {
	if v.Image == "" && v.Color == "" && len(v.Gradient) == 0 {
		return fieldErr(p, "set image, gradient or color")
	}
	if v.Color != "" && len(v.Gradient) > 0 {
		return fieldErr(p, "set gradient or color, not both")
	}
	if v.Image == "cover" && v.Color == "" && len(v.Gradient) == 0 {
		return fieldErr(p+".image", "\"cover\" needs a gradient or color for videos without cover art")
	}
	if v.Image != "" && v.Image != "cover" {
		if err := validImageName(v.Image); err != nil {
			return fieldErr(p+".image", "%v", err)
		}
		if _, ok := t.images[v.Image]; !ok && t.images != nil {
			return fieldErr(p+".image", "%q was not loaded", v.Image)
		}
	}
	if len(v.Gradient) == 1 || len(v.Gradient) > 8 {
		return fieldErr(p+".gradient", "want 2..8 colours (got %d)", len(v.Gradient))
	}
	for i, g := range v.Gradient {
		if err := c.check(fmt.Sprintf("%s.gradient[%d]", p, i), g, true); err != nil {
			return err
		}
	}
	return firstErr(c.check(p+".color", v.Color, false),
		rangeErr(p+".angle", v.Angle, -360, 360),
		rangeErr(p+".blur", v.Blur, 0, 0.2),
		rangeErr(p+".darken", v.Darken, 0, 1))
}

// validImageName allows a plain file name next to the template, never a path.
func validImageName(name string) error {
	if name != filepath.Base(name) || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%q: want a file name in the template's directory", name)
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg", ".webp":
		return nil
	}
	return fmt.Errorf("%q: want a .png, .jpg or .webp file", name)
}

func (b *Box) inSafeArea() error {
	const eps = 1e-9
	if b.W <= 0 || b.H <= 0 {
		return fmt.Errorf("empty box (w %g, h %g)", b.W, b.H)
	}
	lo, hi := SafeMargin, 1-SafeMargin
	switch {
	case b.X < lo-eps:
		return fmt.Errorf("leaves the safe area (x %g < %g)", b.X, lo)
	case b.Y < lo-eps:
		return fmt.Errorf("leaves the safe area (y %g < %g)", b.Y, lo)
	case b.X+b.W > hi+eps:
		return fmt.Errorf("leaves the safe area (x+w %g > %g)", b.X+b.W, hi)
	case b.Y+b.H > hi+eps:
		return fmt.Errorf("leaves the safe area (y+h %g > %g)", b.Y+b.H, hi)
	}
	return nil
}

// colorChecker validates colours and their setting references.
type colorChecker struct{ t *Template }

func (c colorChecker) check(path string, v Color, required bool) error {
	if v == "" {
		if required {
			return fieldErr(path, "missing")
		}
		return nil
	}
	if name, ok := strings.CutPrefix(string(v), "$"); ok {
		def, ok := c.t.Settings[name]
		if !ok {
			return fieldErr(path, "%q refers to an undeclared setting (declare it in settings)", v)
		}
		if _, err := parseHexColor(def); err != nil {
			return fieldErr("settings."+name, "%v", err)
		}
		return nil
	}
	if _, err := parseHexColor(string(v)); err != nil {
		return fieldErr(path, "%v", err)
	}
	return nil
}

func rangeErr(path string, v, lo, hi float64) error {
	if v < lo || v > hi || v != v {
		return fieldErr(path, "must be %g..%g (got %g)", lo, hi, v)
	}
	return nil
}

func oneOf(path, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	var show []string
	for _, a := range allowed {
		if a != "" {
			show = append(show, fmt.Sprintf("%q", a))
		}
	}
	return fieldErr(path, "%q: want one of %s", v, strings.Join(show, ", "))
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
