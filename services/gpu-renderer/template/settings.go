package template

import (
	"fmt"
	"image/color"
	"sort"
	"strconv"
	"strings"
)

// Setting keys the built-in templates declare, so that apps can offer the
// same knobs (colours, pulse) for every look. A template may declare others;
// layers refer to them as "$name".
const (
	SettingBarColor         = "bar_color"
	SettingBarColorTop      = "bar_color_top"
	SettingBackgroundTop    = "background_top"
	SettingBackgroundBottom = "background_bottom"
	SettingTextColor        = "text_color"
	SettingAccentColor      = "accent_color"
	// SettingCoverPulse is numeric (0..0.3) and overrides every cover
	// layer's pulse; every other setting is a colour.
	SettingCoverPulse = "cover_pulse"
)

// validateSettings checks a template's declared settings and their defaults.
func validateSettings(s map[string]string) error {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the same error every time
	for _, k := range keys {
		if k == "" {
			return fieldErr("settings", "empty setting name")
		}
		if _, err := parseSettingValue(k, s[k]); err != nil {
			return fieldErr("settings."+k, "%v", err)
		}
	}
	return nil
}

// parseSettingValue checks one value: cover_pulse is a number, the rest colours.
func parseSettingValue(key, v string) (float64, error) {
	if key == SettingCoverPulse {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 0.3 {
			return 0, fmt.Errorf("%q is not a number in 0..0.3", v)
		}
		return f, nil
	}
	_, err := parseHexColor(v)
	return 0, err
}

// Palette is the settings of one render: the template's defaults with the
// user's overrides applied; it resolves every colour of the layers.
type Palette struct {
	values     map[string]string
	coverPulse float64 // < 0: keep each layer's own pulse
}

// NewPalette applies overrides for the settings a template declares. A
// declared value that does not parse is the user's bad input: an error.
func NewPalette(t *Template, overrides map[string]string) (*Palette, error) {
	p := &Palette{values: make(map[string]string, len(t.Settings)), coverPulse: -1}
	for k, v := range t.Settings {
		p.values[k] = v
	}
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := overrides[k]
		_, declared := t.Settings[k]
		if v == "" || (!declared && k != SettingCoverPulse) {
			continue // unknown knobs are ignored, empty ones keep the default
		}
		if _, err := parseSettingValue(k, v); err != nil {
			return nil, fmt.Errorf("setting %s: %w", k, err)
		}
		p.values[k] = v
	}
	if v, ok := p.values[SettingCoverPulse]; ok {
		p.coverPulse, _ = parseSettingValue(SettingCoverPulse, v)
	}
	return p, nil
}

// CoverPulse returns the cover_pulse setting when the template or the user
// set one, else def (the cover layer's own pulse).
func (p *Palette) CoverPulse(def float64) float64 {
	if p.coverPulse >= 0 {
		return p.coverPulse
	}
	return def
}

// Color resolves a layer colour (def when empty); the template was validated,
// so a failure here is a bad override, reported with the setting's name.
func (p *Palette) Color(c Color, def color.NRGBA) (color.NRGBA, error) {
	if c == "" {
		return def, nil
	}
	v := string(c)
	if name, ok := strings.CutPrefix(v, "$"); ok {
		val, ok := p.values[name]
		if !ok {
			return color.NRGBA{}, fmt.Errorf("colour %s: no such setting", c)
		}
		col, err := parseHexColor(val)
		if err != nil {
			return color.NRGBA{}, fmt.Errorf("setting %s: %w", name, err)
		}
		return col, nil
	}
	return parseHexColor(v)
}

// parseHexColor reads "#rgb", "#rrggbb" or "#rrggbbaa" (the # is optional).
func parseHexColor(v string) (color.NRGBA, error) {
	h := strings.TrimPrefix(strings.TrimSpace(v), "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	if len(h) == 6 {
		h += "ff"
	}
	if len(h) != 8 {
		return color.NRGBA{}, fmt.Errorf("colour %q: want #rrggbb or #rrggbbaa", v)
	}
	n, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return color.NRGBA{}, fmt.Errorf("colour %q: want #rrggbb or #rrggbbaa", v)
	}
	return color.NRGBA{R: uint8(n >> 24), G: uint8(n >> 16), B: uint8(n >> 8), A: uint8(n)}, nil
}
