package template

import (
	"bytes"
	"encoding/json"
	"image/color"
	"testing"

	"github.com/stretchr/testify/require"
)

// lookup returns a fresh copy of a built-in template.
func lookup(t testing.TB, name string) *Template {
	t.Helper()
	for _, tpl := range BuiltinTemplates() {
		if tpl.Name == name {
			return tpl
		}
	}
	t.Fatalf("no built-in template %q", name)
	return nil
}

func TestTemplateJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tpl := range BuiltinTemplates() {
		b, err := json.Marshal(tpl)
		require.NoError(t, err)
		got, err := ParseTemplate(bytes.NewReader(b))
		require.NoError(t, err)
		b2, err := json.Marshal(got)
		require.NoError(t, err)
		require.JSONEq(t, string(b), string(b2))
	}
}

func TestBuiltinLookup(t *testing.T) {
	t.Parallel()
	r := Builtin()
	require.Equal(t, []string{"halo", "minimal", "spectrum", "tide"}, r.Names())
	_, err := r.Lookup("spectrum")
	require.NoError(t, err)
	_, err = r.Lookup("vaporwave")
	require.ErrorIs(t, err, ErrUnknownTemplate)
}

func TestSettingsOverride(t *testing.T) {
	t.Parallel()
	tpl := lookup(t, "spectrum")
	p, err := NewPalette(tpl, map[string]string{SettingBarColor: "#00ff00", "unknown_knob": "x", SettingCoverPulse: "0.1"})
	require.NoError(t, err)
	c, err := p.Color("$"+SettingBarColor, parseColorOrZero(""))
	require.NoError(t, err)
	require.Equal(t, uint8(255), c.G)
	require.Equal(t, uint8(0), c.R)
	require.InDelta(t, 0.1, p.coverPulse, 1e-9)

	_, err = NewPalette(tpl, map[string]string{SettingCoverPulse: "2"})
	require.ErrorContains(t, err, "cover_pulse")
	_, err = NewPalette(tpl, map[string]string{SettingBarColor: "pink"})
	require.ErrorContains(t, err, "bar_color")
}

func parseColorOrZero(s string) (c color.NRGBA) {
	c, _ = parseHexColor(s)
	return c
}
