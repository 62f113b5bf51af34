// Command contact-sheet writes one PNG per built-in template (or the
// templates of -dir) showing several frames in every format, so readers of
// docs/templates see each look without rendering a video:
//
//	go run ./services/gpu-renderer/cmd/contact-sheet -out docs/templates
package main

import (
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"

	renderer "github.com/backbeat/backbeat/services/gpu-renderer"
	"github.com/backbeat/backbeat/services/gpu-renderer/rendertest"
	"github.com/backbeat/backbeat/services/gpu-renderer/template"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "contact-sheet:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "docs/templates", "directory for <template>.png")
	dir := flag.String("dir", "", "also draw the templates in this directory")
	scale := flag.Float64("scale", 0.25, "size of each frame relative to the full format")
	flag.Parse()
	reg, err := template.LoadTemplates(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	times := []float64{1.0, 4.27, 8.5, 13.1}
	an := rendertest.SyntheticAnalysis(slices.Max(times)+1, renderer.ContactSheetFPS, 48)
	for _, name := range reg.Names() {
		tpl, err := reg.Lookup(name)
		if err != nil {
			return err
		}
		img, err := renderer.ContactSheet(tpl, an, times, *scale, "Midnight Avenue", "The Backbeats", rendertest.SampleCover())
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		path := filepath.Join(*out, name+".png")
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		enc := png.Encoder{CompressionLevel: png.BestCompression}
		if err := enc.Encode(f, img); err != nil {
			_ = f.Close()
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Println(path)
	}
	return nil
}
