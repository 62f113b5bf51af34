package template

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// userTemplate is a small valid template a user could write.
const userTemplate = `{
  "name": "my-look",
  "settings": {"bar_color": "#33ff99"},
  "layers": [
    {"background": {"image": "backdrop.png", "blur": 0.02, "darken": 0.3}},
    {"box": {"square": {"x": 0.1, "y": 0.1, "w": 0.8, "h": 0.8},
             "portrait": {"x": 0.1, "y": 0.1, "w": 0.8, "h": 0.8},
             "landscape": {"x": 0.1, "y": 0.1, "w": 0.8, "h": 0.8}},
     "bars": {"style": "linear", "count": 16, "gap": 0.2, "color": "$bar_color"}}
  ]
}`

// TestTemplateErrorsNameTheField: each broken template is refused with an
// error naming the JSON field at fault.
func TestTemplateErrorsNameTheField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(m map[string]any)
		want   string
	}{
		{"bar count", func(m map[string]any) { layer(m, 1)["bars"].(map[string]any)["count"] = 300 },
			"layers[1].bars.count: must be 1..256 (got 300)"},
		{"bar style", func(m map[string]any) { layer(m, 1)["bars"].(map[string]any)["style"] = "zigzag" },
			`layers[1].bars.style: "zigzag": want one of`},
		{"unsafe box", func(m map[string]any) { box(m, 1, "portrait")["x"] = 0.01 },
			"layers[1].box.portrait: leaves the safe area (x 0.01 < 0.05)"},
		{"missing format", func(m map[string]any) { delete(layer(m, 1)["box"].(map[string]any), "landscape") },
			"layers[1].box.landscape: missing"},
		{"undeclared setting", func(m map[string]any) { layer(m, 1)["bars"].(map[string]any)["color"] = "$nope" },
			`layers[1].bars.color: "$nope" refers to an undeclared setting`},
		{"bad colour", func(m map[string]any) { layer(m, 1)["bars"].(map[string]any)["color_top"] = "#12345" },
			`layers[1].bars.color_top: colour "#12345"`},
		{"bad setting default", func(m map[string]any) { m["settings"].(map[string]any)["bar_color"] = "green" },
			`settings.bar_color: colour "green"`},
		{"unknown field", func(m map[string]any) { layer(m, 1)["bars"].(map[string]any)["cuont"] = 3 },
			`layers[1]: decode: json: unknown field "cuont"`},
		{"two kinds", func(m map[string]any) { layer(m, 1)["text"] = map[string]any{"text": "x", "color": "#fff"} },
			"layers[1]: set exactly one of"},
		{"background box", func(m map[string]any) { layer(m, 0)["box"] = layer(m, 1)["box"] },
			"layers[0].box: a background fills the frame"},
		{"image path", func(m map[string]any) { layer(m, 0)["background"].(map[string]any)["image"] = "../etc/passwd.png" },
			"layers[0].background.image"},
		{"blur", func(m map[string]any) { layer(m, 0)["background"].(map[string]any)["blur"] = 0.5 },
			"layers[0].background.blur: must be 0..0.2 (got 0.5)"},
		{"empty name", func(m map[string]any) { m["name"] = "" }, "name: must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(userTemplate), &m))
			layer(m, 0)["background"] = map[string]any{"gradient": []any{"#000000", "#202020"}}
			tc.mutate(m)
			b, err := json.Marshal(m)
			require.NoError(t, err)
			_, err = ParseTemplate(bytes.NewReader(b))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func layer(m map[string]any, i int) map[string]any {
	return m["layers"].([]any)[i].(map[string]any)
}

func box(m map[string]any, i int, layout string) map[string]any {
	return layer(m, i)["box"].(map[string]any)[layout].(map[string]any)
}

// TestLoadTemplatesFromDir: a user adds a template (and its background
// image) as files, with no Go code; a broken file stops the load and the
// error names the file and the field; built-in names cannot be taken.
// (That such a template renders, and that the service loads the directory
// from its config, is TestUserTemplateDirRenders in package renderer.)
func TestLoadTemplatesFromDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mine.json"), []byte(userTemplate), 0o600))
	f, err := os.Create(filepath.Join(dir, "backdrop.png"))
	require.NoError(t, err)
	require.NoError(t, png.Encode(f, image.NewRGBA(image.Rect(0, 0, 30, 20))))
	require.NoError(t, f.Close())

	reg, err := LoadTemplates(dir)
	require.NoError(t, err)
	require.Equal(t, []string{"halo", "minimal", "my-look", "spectrum", "tide"}, reg.Names())
	tpl, err := reg.Lookup("my-look")
	require.NoError(t, err)
	require.NotNil(t, tpl.Image("backdrop.png"), "the background image is loaded with the template")

	broken := strings.Replace(userTemplate, `"count": 16`, `"count": 0`, 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "zz-broken.json"), []byte(broken), 0o600))
	_, err = LoadTemplates(dir)
	require.ErrorContains(t, err, "zz-broken.json")
	require.ErrorContains(t, err, "layers[1].bars.count: must be 1..256 (got 0)")
	require.NoError(t, os.Remove(filepath.Join(dir, "zz-broken.json")))

	require.NoError(t, os.Remove(filepath.Join(dir, "backdrop.png")))
	_, err = LoadTemplates(dir)
	require.ErrorContains(t, err, "layers[0].background.image")

	dup := t.TempDir()
	spectrum, err := json.Marshal(lookup(t, "spectrum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dup, "spectrum.json"), spectrum, 0o600))
	_, err = LoadTemplates(dup)
	require.ErrorContains(t, err, "registered twice")
}
