package renderer

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// TestUserTemplateDirRenders: a template a user drops in a directory, with a
// background image next to it, renders in every layout, and the service
// picks the directory up from its config. (Loading and its errors are
// tested in package template.)
func TestUserTemplateDirRenders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mine := builtin(t, "spectrum")
	mine.Name = "my-look"
	mine.Layers[0] = template.Layer{Background: &template.BackgroundLayer{Image: "backdrop.png", Blur: 0.02, Darken: 0.3}}
	data, err := json.Marshal(mine)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mine.json"), data, 0o600))
	f, err := os.Create(filepath.Join(dir, "backdrop.png"))
	require.NoError(t, err)
	require.NoError(t, png.Encode(f, testCover()))
	require.NoError(t, f.Close())

	reg, err := template.LoadTemplates(dir)
	require.NoError(t, err)
	tpl, err := reg.Lookup("my-look")
	require.NoError(t, err)
	for _, layout := range template.Layouts {
		s, err := NewScene(SceneInput{Template: tpl, Layout: layout, Width: 64, Height: 64, FPS: 30, Frames: 30,
			Analysis: testAnalysis(1, 30, 16)})
		require.NoError(t, err)
		img := s.NewFrame()
		s.Compose(img, 3)
	}

	cfg := Config{Pool: "cpu", TemplateDir: dir}
	require.NoError(t, cfg.setDefaults())
	_, err = cfg.Templates.Lookup("my-look")
	require.NoError(t, err)
}
