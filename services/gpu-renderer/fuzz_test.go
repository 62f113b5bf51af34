package renderer

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/backbeat/backbeat/services/gpu-renderer/internal/yuv"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

// FuzzTemplateComposes: any template the parser accepts (a template author's
// file) builds a scene in every layout and composes its first and last
// frames, on the still path and on the production YUV path, without a panic
// and with the two paths agreeing on the frame size.
func FuzzTemplateComposes(f *testing.F) {
	for _, name := range []string{"spectrum", "minimal", "halo", "tide"} {
		b, err := json.Marshal(builtin(f, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"name":"x","layers":[]}`))
	an := testAnalysis(1, 10, 8)
	f.Fuzz(func(t *testing.T, data []byte) {
		tpl, err := template.ParseTemplate(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, layout := range template.Layouts {
			s, err := NewScene(SceneInput{Template: tpl, Layout: layout, Width: 48, Height: 32, FPS: 10, Frames: 10,
				Analysis: an, Title: "T", Artist: "A"})
			if err != nil {
				// A scene may refuse what the parser accepted only with an
				// error, never a panic; say which, so it can be moved into
				// validation.
				t.Logf("%s: accepted template refused by the scene: %v", layout, err)
				continue
			}
			w, h := s.Size()
			img := s.NewFrame()
			buf := make([]byte, yuv.FrameSize(w, h, false))
			for _, n := range []int{0, s.Frames() - 1} {
				s.Compose(img, n)
				s.composeYUV(buf, n, false)
			}
		}
	})
}
