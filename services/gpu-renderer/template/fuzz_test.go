package template

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseTemplate feeds arbitrary bytes to the template parser, the way a
// template author's file reaches it. Whatever it accepts must validate,
// survive a JSON round trip unchanged and give a palette; nothing may panic.
func FuzzParseTemplate(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("templates", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("built-in templates as seeds: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"name":"x","layers":[]}`))
	f.Add([]byte(`{"name":"x","layers":[{"bars":{"count":-1}}]}`))
	f.Add([]byte(`{"name":"x","settings":{"bar_color":"#zzz"},"layers":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tpl, err := ParseTemplate(bytes.NewReader(data))
		if err != nil {
			if tpl != nil {
				t.Fatalf("an error and a template: %v", err)
			}
			return
		}
		if err := tpl.Validate(); err != nil {
			t.Fatalf("accepted a template that does not validate: %v", err)
		}
		again, err := json.Marshal(tpl)
		if err != nil {
			t.Fatalf("accepted template does not encode: %v", err)
		}
		tpl2, err := ParseTemplate(bytes.NewReader(again))
		if err != nil {
			t.Fatalf("its own encoding is refused: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(tpl, tpl2) {
			t.Fatalf("round trip changed the template:\n%+v\n%+v", tpl, tpl2)
		}
		if _, err := NewPalette(tpl, nil); err != nil {
			t.Fatalf("accepted template has no palette: %v", err)
		}
	})
}
