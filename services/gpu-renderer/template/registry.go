package template

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // background image formats
	_ "image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	_ "golang.org/x/image/webp"
)

// builtinFS holds the built-in templates as the same JSON files users write,
// so they are examples as much as defaults.
//
//go:embed templates/*.json
var builtinFS embed.FS

// maxTemplateBytes bounds a template file; real ones are a few kilobytes.
const maxTemplateBytes = 1 << 20

// ParseTemplate reads a JSON template and validates it. Unknown fields are
// errors (a misspelt key would otherwise be silently ignored) and name the
// layer they are in.
func ParseTemplate(r io.Reader) (*Template, error) {
	return parseTemplate(r, nil)
}

func parseTemplate(r io.Reader, images map[string]image.Image) (*Template, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxTemplateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("template: read: %w", err)
	}
	if len(data) > maxTemplateBytes {
		return nil, fmt.Errorf("template: larger than %d bytes", maxTemplateBytes)
	}
	// Decode the layers one by one so an unknown or mistyped field is
	// reported with the index of its layer.
	var top struct {
		Name        string            `json:"name"`
		Description string            `json:"description"`
		Settings    map[string]string `json:"settings"`
		Layers      []json.RawMessage `json:"layers"`
	}
	if err := strictDecode(data, &top); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	t := &Template{Name: top.Name, Description: top.Description, Settings: top.Settings, images: images}
	for i, raw := range top.Layers {
		var l Layer
		if err := strictDecode(raw, &l); err != nil {
			return nil, fmt.Errorf("template %q: layers[%d]: %w", top.Name, i, err)
		}
		t.Layers = append(t.Layers, l)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return errors.New("decode: trailing data after the template")
	}
	return nil
}

// LoadDir reads every *.json template in dir, with the background images
// they name from the same directory. Any invalid template fails the whole
// load: a renderer should refuse to start rather than fail jobs later.
func LoadDir(dir string) ([]*Template, error) {
	return loadFS(os.DirFS(dir), dir)
}

func loadFS(fsys fs.FS, where string) ([]*Template, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("templates in %s: %w", where, err)
	}
	sort.Strings(names)
	var out []*Template
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("templates in %s: %w", where, err)
		}
		images, err := loadImages(fsys, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(where, name), err)
		}
		t, err := parseTemplate(bytes.NewReader(data), images)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(where, name), err)
		}
		out = append(out, t)
	}
	return out, nil
}

// loadImages decodes the background files a template names, before it is
// validated (validation checks each was found).
func loadImages(fsys fs.FS, data []byte) (map[string]image.Image, error) {
	var peek struct {
		Layers []struct {
			Background *struct {
				Image string `json:"image"`
			} `json:"background"`
		} `json:"layers"`
	}
	images := map[string]image.Image{}
	if json.Unmarshal(data, &peek) != nil {
		return images, nil // the strict parse reports it
	}
	for i, l := range peek.Layers {
		if l.Background == nil || l.Background.Image == "" || l.Background.Image == "cover" {
			continue
		}
		name := l.Background.Image
		if err := validImageName(name); err != nil {
			return nil, fmt.Errorf("layers[%d].background.image: %w", i, err)
		}
		f, err := fsys.Open(name)
		if err != nil {
			return nil, fmt.Errorf("layers[%d].background.image: %w", i, err)
		}
		img, err := decodeImage(f)
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("layers[%d].background.image: %w", i, err)
		}
		images[name] = img
	}
	return images, nil
}

// Bounds on a background image, the same as the service's on cover art: a
// hostile file cannot make the renderer allocate without limit.
const (
	maxImageBytes  = 32 << 20
	maxImagePixels = 50_000_000
)

// decodeImage reads a JPEG, PNG or WebP (at most maxImageBytes), refusing
// absurd dimensions before decoding.
func decodeImage(r io.Reader) (image.Image, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxImageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("image: read: %w", err)
	}
	if len(data) > maxImageBytes {
		return nil, fmt.Errorf("image: larger than %d bytes", maxImageBytes)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxImagePixels {
		return nil, fmt.Errorf("image: %dx%d is too large", cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return img, nil
}

// Templates is a registry of templates by name.
type Templates struct {
	byName map[string]*Template
}

// NewTemplates registers the given templates after validating them.
func NewTemplates(ts ...*Template) (*Templates, error) {
	r := &Templates{byName: make(map[string]*Template, len(ts))}
	for _, t := range ts {
		if err := t.Validate(); err != nil {
			return nil, err
		}
		if _, dup := r.byName[t.Name]; dup {
			return nil, fmt.Errorf("template %q registered twice", t.Name)
		}
		r.byName[t.Name] = t
	}
	return r, nil
}

// BuiltinTemplates returns fresh copies of the templates compiled into the
// renderer (from templates/*.json), sorted by name.
func BuiltinTemplates() []*Template {
	sub, err := fs.Sub(builtinFS, "templates")
	if err != nil {
		panic(fmt.Sprintf("builtin templates: %v", err))
	}
	ts, err := loadFS(sub, "builtin")
	if err != nil {
		panic(fmt.Sprintf("builtin templates: %v", err)) // a programming error caught by tests
	}
	return ts
}

// Builtin returns the registry of the templates compiled into the renderer.
func Builtin() *Templates {
	r, err := NewTemplates(BuiltinTemplates()...)
	if err != nil {
		panic(fmt.Sprintf("builtin templates: %v", err))
	}
	return r
}

// LoadTemplates returns the built-in templates plus those in dir (none when
// dir is empty). A user template may not reuse a built-in name: a job asking
// for "spectrum" must look the same on every renderer.
func LoadTemplates(dir string) (*Templates, error) {
	ts := BuiltinTemplates()
	if strings.TrimSpace(dir) != "" {
		user, err := LoadDir(dir)
		if err != nil {
			return nil, err
		}
		ts = append(ts, user...)
	}
	return NewTemplates(ts...)
}

// Lookup returns a template or an error wrapping ErrUnknownTemplate.
func (r *Templates) Lookup(name string) (*Template, error) {
	t, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %v)", ErrUnknownTemplate, name, r.Names())
	}
	return t, nil
}

// Names lists the registered templates, sorted.
func (r *Templates) Names() []string {
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
