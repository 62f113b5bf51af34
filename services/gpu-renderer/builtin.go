package renderer

import (
	"fmt"
	"image/color"
	"strconv"
	"strings"
)

// Setting keys a user may pass in RenderJob.template_settings. Keys a template
// does not know are ignored so that apps can send newer knobs to older renderers.
const (
	SettingBarColor         = "bar_color"
	SettingBarColorTop      = "bar_color_top"
	SettingBackgroundTop    = "background_top"
	SettingBackgroundBottom = "background_bottom"
	SettingTextColor        = "text_color"
	SettingAccentColor      = "accent_color"
	SettingCoverPulse       = "cover_pulse"
)

// settings are the parsed knobs of one render.
type settings struct {
	barBottom, barTop color.RGBA
	bgTop, bgBottom   color.RGBA
	text, accent      color.RGBA
	coverPulse        float64
}

// parseSettings applies overrides on top of a template's defaults. A value
// that does not parse is an error: the user sent bad input.
func parseSettings(defaults, overrides map[string]string) (settings, error) {
	get := func(k string) string {
		if v, ok := overrides[k]; ok && v != "" {
			return v
		}
		return defaults[k]
	}
	var s settings
	colors := []struct {
		key string
		dst *color.RGBA
		def string
	}{
		{SettingBarColor, &s.barBottom, "#ffffff"},
		{SettingBarColorTop, &s.barTop, ""},
		{SettingBackgroundTop, &s.bgTop, "#1d1f3a"},
		{SettingBackgroundBottom, &s.bgBottom, "#0b0b12"},
		{SettingTextColor, &s.text, "#ffffff"},
		{SettingAccentColor, &s.accent, "#ffffff"},
	}
	for _, c := range colors {
		v := get(c.key)
		if v == "" {
			v = c.def
		}
		if v == "" { // bar_color_top defaults to bar_color
			*c.dst = s.barBottom
			continue
		}
		col, err := parseHexColor(v)
		if err != nil {
			return settings{}, fmt.Errorf("setting %s: %w", c.key, err)
		}
		*c.dst = col
	}
	s.coverPulse = 0.06
	if v := get(SettingCoverPulse); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 0.3 {
			return settings{}, fmt.Errorf("setting %s: %q is not a number in 0..0.3", SettingCoverPulse, v)
		}
		s.coverPulse = f
	}
	return s, nil
}

// parseHexColor reads "#rgb", "#rrggbb" (the # is optional).
func parseHexColor(v string) (color.RGBA, error) {
	h := strings.TrimPrefix(strings.TrimSpace(v), "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	if len(h) != 6 {
		return color.RGBA{}, fmt.Errorf("colour %q: want #rrggbb", v)
	}
	n, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return color.RGBA{}, fmt.Errorf("colour %q: want #rrggbb", v)
	}
	return color.RGBA{R: uint8(n >> 16), G: uint8(n >> 8), B: uint8(n), A: 255}, nil
}

// Spectrum is the first real template: blurred cover backdrop, pulsing cover,
// rounded spectrum bars, title, artist and a progress bar, laid out per format.
func Spectrum() *Template {
	return &Template{
		Name: "spectrum",
		Settings: map[string]string{
			SettingBarColor:    "#ff3d7f",
			SettingBarColorTop: "#ffd166",
			SettingTextColor:   "#ffffff",
			SettingAccentColor: "#ff3d7f",
			SettingCoverPulse:  "0.06",
		},
		Background: Background{Downscale: 16, BlurRadius: 3, Darken: 0.55},
		Bars:       Bars{Count: 48, Gap: 0.35, Rounded: true, Mirror: true, MinHeight: 0.03, Hold: 6, Decay: 0.8},
		Layouts: map[string]Layout{
			LayoutSquare: {
				Cover:    &Box{X: 0.30, Y: 0.08, W: 0.40, H: 0.40},
				Title:    &Box{X: 0.08, Y: 0.52, W: 0.84, H: 0.055},
				Artist:   &Box{X: 0.08, Y: 0.59, W: 0.84, H: 0.038},
				Bars:     &Box{X: 0.08, Y: 0.65, W: 0.84, H: 0.23},
				Progress: &Box{X: 0.08, Y: 0.91, W: 0.84, H: 0.006},
				WithoutCover: &Layout{
					Title:    &Box{X: 0.08, Y: 0.14, W: 0.84, H: 0.07},
					Artist:   &Box{X: 0.08, Y: 0.23, W: 0.84, H: 0.045},
					Bars:     &Box{X: 0.08, Y: 0.38, W: 0.84, H: 0.48},
					Progress: &Box{X: 0.08, Y: 0.91, W: 0.84, H: 0.006},
				},
			},
			LayoutPortrait: {
				Cover:    &Box{X: 0.15, Y: 0.12, W: 0.70, H: 0.40},
				Title:    &Box{X: 0.08, Y: 0.56, W: 0.84, H: 0.034},
				Artist:   &Box{X: 0.08, Y: 0.605, W: 0.84, H: 0.024},
				Bars:     &Box{X: 0.08, Y: 0.66, W: 0.84, H: 0.20},
				Progress: &Box{X: 0.08, Y: 0.89, W: 0.84, H: 0.004},
				WithoutCover: &Layout{
					Title:    &Box{X: 0.08, Y: 0.20, W: 0.84, H: 0.04},
					Artist:   &Box{X: 0.08, Y: 0.255, W: 0.84, H: 0.026},
					Bars:     &Box{X: 0.08, Y: 0.42, W: 0.84, H: 0.40},
					Progress: &Box{X: 0.08, Y: 0.89, W: 0.84, H: 0.004},
				},
			},
			LayoutLandscape: {
				Cover:    &Box{X: 0.07, Y: 0.18, W: 0.34, H: 0.60},
				Title:    &Box{X: 0.45, Y: 0.20, W: 0.48, H: 0.075},
				Artist:   &Box{X: 0.45, Y: 0.30, W: 0.48, H: 0.05},
				Bars:     &Box{X: 0.45, Y: 0.42, W: 0.48, H: 0.40},
				Progress: &Box{X: 0.07, Y: 0.88, W: 0.86, H: 0.008},
				Align:    "left",
				WithoutCover: &Layout{
					Title:    &Box{X: 0.07, Y: 0.14, W: 0.86, H: 0.075},
					Artist:   &Box{X: 0.07, Y: 0.24, W: 0.86, H: 0.05},
					Bars:     &Box{X: 0.07, Y: 0.38, W: 0.86, H: 0.44},
					Progress: &Box{X: 0.07, Y: 0.88, W: 0.86, H: 0.008},
				},
			},
		},
	}
}

// Minimal is a plain variant: gradient or backdrop, a wide bar row, text and
// progress, no cover thumbnail. It proves a second look needs no new code.
func Minimal() *Template {
	return &Template{
		Name: "minimal",
		Settings: map[string]string{
			SettingBarColor:    "#e6e6e6",
			SettingTextColor:   "#e6e6e6",
			SettingAccentColor: "#7aa2f7",
		},
		Background: Background{Downscale: 24, BlurRadius: 4, Darken: 0.7},
		Bars:       Bars{Count: 24, Gap: 0.5, Rounded: true, MinHeight: 0.02, Hold: 3, Decay: 0.7},
		Layouts: map[string]Layout{
			LayoutSquare: {
				Title:    &Box{X: 0.10, Y: 0.12, W: 0.80, H: 0.06},
				Artist:   &Box{X: 0.10, Y: 0.20, W: 0.80, H: 0.04},
				Bars:     &Box{X: 0.10, Y: 0.40, W: 0.80, H: 0.40},
				Progress: &Box{X: 0.10, Y: 0.88, W: 0.80, H: 0.005},
			},
			LayoutPortrait: {
				Title:    &Box{X: 0.10, Y: 0.15, W: 0.80, H: 0.035},
				Artist:   &Box{X: 0.10, Y: 0.20, W: 0.80, H: 0.025},
				Bars:     &Box{X: 0.10, Y: 0.40, W: 0.80, H: 0.30},
				Progress: &Box{X: 0.10, Y: 0.85, W: 0.80, H: 0.003},
			},
			LayoutLandscape: {
				Title:    &Box{X: 0.10, Y: 0.12, W: 0.80, H: 0.07},
				Artist:   &Box{X: 0.10, Y: 0.21, W: 0.80, H: 0.045},
				Bars:     &Box{X: 0.10, Y: 0.38, W: 0.80, H: 0.44},
				Progress: &Box{X: 0.10, Y: 0.88, W: 0.80, H: 0.006},
			},
		},
	}
}

// Builtin returns the registry of the templates compiled into the renderer.
func Builtin() *Templates {
	r, err := NewTemplates(Spectrum(), Minimal())
	if err != nil {
		panic(fmt.Sprintf("builtin templates: %v", err)) // a programming error caught by tests
	}
	return r
}
