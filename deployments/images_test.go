package deployments

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	dfinstructions "github.com/moby/buildkit/frontend/dockerfile/instructions"
	dflinter "github.com/moby/buildkit/frontend/dockerfile/linter"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// repoRoot is the Docker build context of every image: the repository root.
const repoRoot = ".."

// ffmpegExceptions are images whose binary can reach ffmpeg but whose image
// is not meant to run it, with the reason. The test fails when an exception
// is no longer needed, so the list cannot rot.
var ffmpegExceptions = map[string]string{
	"backbeat/backbeat": "the CLI reaches pkg/media only through `backbeat dev` and `backbeat demo`, which run on a workstation; the image runs provision, replay, dlq and recover",
}

// dockerfiles maps each image to the Dockerfile that builds it:
// backbeat/<svc> to services/<svc>/Dockerfile and backbeat/backbeat to
// cmd/backbeat/Dockerfile (paths relative to the repository root).
func dockerfiles(t *testing.T) map[string]string {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(repoRoot, "services", "*", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range found {
		svc := filepath.Base(filepath.Dir(f))
		out["backbeat/"+svc] = filepath.ToSlash(filepath.Join("services", svc, "Dockerfile"))
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "cmd", "backbeat", "Dockerfile")); err == nil {
		out["backbeat/backbeat"] = "cmd/backbeat/Dockerfile"
	}
	if len(out) == 0 {
		t.Fatal("no Dockerfile under services/*/ or cmd/backbeat/")
	}
	return out
}

// dockerfile is one parsed Dockerfile.
type dockerfile struct {
	path   string
	text   string
	stages []dfinstructions.Stage
}

// parseDockerfile parses with BuildKit's own parser and instruction decoder
// (what `docker build` runs); a lint warning of BuildKit's default rules is
// an error too.
func parseDockerfile(t *testing.T, rel string) dockerfile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	res, err := dfparser.Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: parser warning: %s", rel, w.Short)
	}
	lint := dflinter.New(&dflinter.Config{Warn: func(rule, _, _, msg string, loc []dfparser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		t.Errorf("%s:%d: lint %s: %s", rel, line, rule, msg)
	}})
	stages, _, err := dfinstructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return dockerfile{path: rel, text: string(raw), stages: stages}
}

// runLines are the RUN commands of a stage, each as one shell line.
func runLines(st dfinstructions.Stage) []string {
	var out []string
	for _, c := range st.Commands {
		if r, ok := c.(*dfinstructions.RunCommand); ok {
			out = append(out, strings.Join(r.CmdLine, " "))
		}
	}
	return out
}

// installsFFmpeg reports whether a RUN of the stage installs ffmpeg with apt.
func installsFFmpeg(st dfinstructions.Stage) bool {
	for _, line := range runLines(st) {
		for _, cmd := range regexp.MustCompile(`&&|;|\|\|`).Split(line, -1) {
			f := strings.Fields(cmd)
			if len(f) >= 2 && (f[0] == "apt-get" || f[0] == "apt") && slices.Contains(f, "install") && slices.Contains(f, "ffmpeg") {
				return true
			}
		}
	}
	return false
}

// goBuildTargets returns the package arguments ("./…") of every `go build`
// in the stage and the whole go build command lines.
func goBuildTargets(st dfinstructions.Stage) (targets, builds []string) {
	for _, line := range runLines(st) {
		for _, cmd := range regexp.MustCompile(`&&|;|\|\|`).Split(line, -1) {
			_, after, ok := strings.Cut(cmd, "go build")
			if !ok {
				continue
			}
			builds = append(builds, cmd)
			for _, f := range strings.Fields(after) {
				if strings.HasPrefix(f, "./") {
					targets = append(targets, path.Clean(f))
				}
			}
		}
	}
	return targets, builds
}

// TestDockerfilesFollowTheRules: every image is a multi-stage build from
// golang:<go.work's Go>-bookworm into debian:bookworm-slim, with no registry
// host named, a static trimmed binary of a real main package, only files that
// exist copied in, a numeric non-root USER, an exec-form ENTRYPOINT of the
// copied binary, the ports its pods declare EXPOSEd, and ffmpeg exactly where
// the binary runs it.
func TestDockerfilesFollowTheRules(t *testing.T) {
	goVersion := workGoVersion(t)
	graph := loadGoPackages(t)
	ports := renderedImages(t)
	ignored := dockerignore(t)
	for image, rel := range dockerfiles(t) {
		t.Run(image, func(t *testing.T) {
			df := parseDockerfile(t, rel)
			if len(df.stages) < 2 {
				t.Fatalf("%s: %d stage(s), want a multi-stage build", rel, len(df.stages))
			}
			names := map[string]bool{}
			for _, st := range df.stages {
				if !names[st.BaseName] {
					if host, _, ok := strings.Cut(st.BaseName, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
						t.Errorf("%s: FROM %s names a registry host; use the default registry's short name", rel, st.BaseName)
					}
				}
				names[st.Name] = true
			}
			build, final := df.stages[0], df.stages[len(df.stages)-1]
			if want := "golang:" + goVersion + "-bookworm"; build.BaseName != want {
				t.Errorf("%s: build stage FROM %s, want %s (go.work's Go on the runtime's Debian)", rel, build.BaseName, want)
			}
			if final.BaseName != "debian:bookworm-slim" {
				t.Errorf("%s: final stage FROM %s, want debian:bookworm-slim", rel, final.BaseName)
			}
			checkUser(t, rel, final)
			binaries := checkCopies(t, rel, df, ignored)
			checkEntrypoint(t, rel, final, binaries)
			checkExpose(t, rel, final, ports[image])

			var targets []string
			cgoOff := false
			for _, st := range df.stages[:len(df.stages)-1] {
				tg, builds := goBuildTargets(st)
				targets = append(targets, tg...)
				for _, b := range builds {
					if !strings.Contains(b, "-trimpath") || !strings.Contains(b, `-ldflags="-s -w"`) {
						t.Errorf("%s: %q: want -trimpath -ldflags=\"-s -w\"", rel, strings.TrimSpace(b))
					}
					cgoOff = cgoOff || strings.Contains(b, "CGO_ENABLED=0")
				}
				for _, c := range st.Commands {
					if e, ok := c.(*dfinstructions.EnvCommand); ok {
						for _, kv := range e.Env {
							cgoOff = cgoOff || (kv.Key == "CGO_ENABLED" && kv.Value == "0")
						}
					}
				}
			}
			if len(targets) == 0 {
				t.Fatalf("%s: no `go build ./…` in a build stage", rel)
			}
			if !cgoOff {
				t.Errorf("%s: CGO_ENABLED=0 not set: nothing needs cgo, and a cgo binary needs the runtime's libc", rel)
			}
			runsFFmpeg := false
			for _, target := range targets {
				if err := isMainPackage(filepath.Join(repoRoot, target)); err != nil {
					t.Errorf("%s: go build %s: %v", rel, target, err)
					continue
				}
				runsFFmpeg = runsFFmpeg || graph.reachesFFmpeg(filepath.Join(repoRoot, target))
			}
			installed := installsFFmpeg(final)
			why, excepted := ffmpegExceptions[image]
			switch {
			case excepted && !runsFFmpeg:
				t.Errorf("%s: ffmpegExceptions lists %s, whose binary no longer reaches ffmpeg: drop the exception", rel, image)
			case excepted && installed:
				t.Errorf("%s installs ffmpeg, which %s does not need: %s", rel, image, why)
			case !excepted && runsFFmpeg && !installed:
				t.Errorf("%s: %s runs ffmpeg (its main package imports a package that execs it), but the image does not install it", rel, image)
			case !excepted && !runsFFmpeg && installed:
				t.Errorf("%s installs ffmpeg, but nothing %s builds runs it", rel, image)
			}
			if image == "backbeat/gpu-renderer" && !strings.Contains(df.text, "NVENC") {
				t.Errorf("%s: must document the NVENC-capable ffmpeg the GPU pool needs", rel)
			}
		})
	}
}

// checkUser: the final stage ends with a numeric, non-root USER uid[:gid].
func checkUser(t *testing.T, rel string, final dfinstructions.Stage) {
	t.Helper()
	user := ""
	for _, c := range final.Commands {
		if u, ok := c.(*dfinstructions.UserCommand); ok {
			user = u.User
		}
	}
	if user == "" {
		t.Errorf("%s: final stage has no USER: the container would run as root", rel)
		return
	}
	for _, id := range strings.Split(user, ":") {
		n, err := strconv.Atoi(id)
		if err != nil || n <= 0 {
			t.Errorf("%s: USER %s: want numeric, non-zero uid:gid (runAsNonRoot can only verify a numeric user)", rel, user)
			return
		}
	}
}

// checkCopies: every COPY from the build context names files that exist and
// that .dockerignore lets through; it returns the destinations of the final
// stage's COPY --from (the binaries).
func checkCopies(t *testing.T, rel string, df dockerfile, ignored []string) []string {
	t.Helper()
	var binaries []string
	for i, st := range df.stages {
		for _, c := range st.Commands {
			cp, ok := c.(*dfinstructions.CopyCommand)
			if !ok {
				continue
			}
			if cp.From != "" {
				if i == len(df.stages)-1 {
					binaries = append(binaries, cp.DestPath)
				}
				continue
			}
			for _, src := range cp.SourcePaths {
				matches, err := filepath.Glob(filepath.Join(repoRoot, src))
				if err != nil || len(matches) == 0 {
					t.Errorf("%s: COPY %s: no such file in the repository", rel, src)
				}
				if p := ignoredBy(src, ignored); p != "" {
					t.Errorf("%s: COPY %s: excluded from the context by .dockerignore %q", rel, src, p)
				}
			}
		}
	}
	return binaries
}

// checkEntrypoint: an exec-form ENTRYPOINT running a binary the final stage
// copied in (no shell at run time).
func checkEntrypoint(t *testing.T, rel string, final dfinstructions.Stage, binaries []string) {
	t.Helper()
	var ep *dfinstructions.EntrypointCommand
	for _, c := range final.Commands {
		if e, ok := c.(*dfinstructions.EntrypointCommand); ok {
			ep = e
		}
	}
	switch {
	case ep == nil:
		t.Errorf("%s: no ENTRYPOINT", rel)
	case ep.PrependShell || len(ep.CmdLine) == 0:
		t.Errorf("%s: ENTRYPOINT must be exec form [\"/path/binary\"], not a shell line", rel)
	case !slices.Contains(binaries, ep.CmdLine[0]):
		t.Errorf("%s: ENTRYPOINT %s is not a binary copied from the build stage (%v)", rel, ep.CmdLine[0], binaries)
	}
}

// checkExpose: the final stage EXPOSEs exactly the container ports that the
// manifests declare for containers running this image.
func checkExpose(t *testing.T, rel string, final dfinstructions.Stage, want []string) {
	t.Helper()
	var got []string
	for _, c := range final.Commands {
		if e, ok := c.(*dfinstructions.ExposeCommand); ok {
			for _, p := range e.Ports {
				got = append(got, strings.TrimSuffix(p, "/tcp"))
			}
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: EXPOSE %v, but its pods declare container ports %v", rel, got, want)
	}
}

// TestEveryImageHasADockerfile: every backbeat/* image a container of the
// rendered manifests runs is built by a Dockerfile here, and every Dockerfile
// builds an image that some container runs.
func TestEveryImageHasADockerfile(t *testing.T) {
	used := renderedImages(t)
	built := dockerfiles(t)
	for image := range used {
		if _, ok := built[image]; !ok {
			t.Errorf("the manifests run %s, but no Dockerfile builds it (want services/<svc>/Dockerfile or cmd/backbeat/Dockerfile)", image)
		}
	}
	for image, rel := range built {
		if _, ok := used[image]; !ok {
			t.Errorf("%s builds %s, which no container in the rendered manifests runs", rel, image)
		}
	}
	raw, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for image := range built {
		if !strings.Contains(string(raw), "- name: "+image+"\n") {
			t.Errorf("kustomization.yaml images: has no tag for %s", image)
		}
	}
}

// TestDockerignore: the build context leaves out the git history, caches,
// local state, binaries and test output.
func TestDockerignore(t *testing.T) {
	patterns := dockerignore(t)
	for _, p := range []string{".git", ".cache", ".data", "bin", "node_modules", "x.test", "x.out"} {
		if ignoredBy(p, patterns) == "" {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}

// dockerignore reads the patterns of ../.dockerignore (no negations).
func dockerignore(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			t.Fatalf(".dockerignore: negation %q: ignoredBy does not handle it", line)
		}
		out = append(out, strings.TrimSuffix(line, "/"))
	}
	return out
}

// ignoredBy returns the .dockerignore pattern that excludes the context path
// p (or a folder above it), or "". It handles what this repository's
// .dockerignore uses: plain paths and globs anchored at the root, and
// "**/" prefixes matching at any depth.
func ignoredBy(p string, patterns []string) string {
	parts := strings.Split(path.Clean(strings.TrimSuffix(p, "/")), "/")
	for _, pat := range patterns {
		anyDepth := strings.HasPrefix(pat, "**/")
		pat := strings.TrimPrefix(pat, "**/")
		n := len(strings.Split(pat, "/"))
		for start := 0; start+n <= len(parts); start++ {
			if start > 0 && !anyDepth {
				break
			}
			if ok, _ := path.Match(pat, strings.Join(parts[start:start+n], "/")); ok {
				return pat
			}
		}
	}
	return ""
}

// workGoVersion is go.work's Go version as major.minor, the golang image tag.
func workGoVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "go.work"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("go.work names no go version")
	}
	return string(m[1])
}

// renderedImages maps every backbeat/* image that a container (or init
// container) of the kustomize-rendered manifests runs to the sorted
// container ports declared for it. It walks the documents generically, so a
// Job or CronJob counts as much as a Deployment.
func renderedImages(t *testing.T) map[string][]string {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), ".")
	if err != nil {
		t.Fatalf("kustomize build deployments/: %v", err)
	}
	out := map[string][]string{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if k != "containers" && k != "initContainers" {
					walk(child)
					continue
				}
				list, _ := child.([]any)
				for _, c := range list {
					c, _ := c.(map[string]any)
					image, _ := c["image"].(string)
					name, _, _ := strings.Cut(image, ":")
					if !strings.HasPrefix(name, "backbeat/") {
						continue
					}
					ports := out[name]
					pl, _ := c["ports"].([]any)
					for _, p := range pl {
						p, _ := p.(map[string]any)
						if s := fmt.Sprint(p["containerPort"]); !slices.Contains(ports, s) {
							ports = append(ports, s)
						}
					}
					slices.Sort(ports)
					out[name] = ports
				}
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	for _, r := range m.Resources() {
		doc, err := r.Map()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		walk(doc)
	}
	return out
}

// isMainPackage reports, as an error, why dir is not a main package.
func isMainPackage(dir string) error {
	files, err := goFiles(dir)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%s: no Go files", dir)
	}
	for _, f := range files {
		pf, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly)
		if err != nil {
			return fmt.Errorf("parse %s: %w", f, err)
		}
		if pf.Name.Name != "main" {
			return fmt.Errorf("%s is package %s, not main", f, pf.Name.Name)
		}
	}
	return nil
}

// goFiles lists the non-test .go files of dir.
func goFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// goPackages is the repository's non-test import graph.
type goPackages struct {
	dirOf   map[string]string   // import path -> directory
	imports map[string][]string // directory -> import paths
	execs   map[string]bool     // directory -> its package execs ffmpeg or ffprobe
}

var (
	packagesOnce sync.Once
	packages     goPackages
	packagesErr  error
)

// loadGoPackages parses every non-test Go file of every module in the
// repository once. A package "execs ffmpeg" when it imports os/exec and
// holds the string literal "ffmpeg" or "ffprobe" (pkg/media does).
func loadGoPackages(t *testing.T) *goPackages {
	t.Helper()
	packagesOnce.Do(func() { packages, packagesErr = scanGoPackages() })
	if packagesErr != nil {
		t.Fatal(packagesErr)
	}
	return &packages
}

func scanGoPackages() (goPackages, error) {
	g := goPackages{dirOf: map[string]string{}, imports: map[string][]string{}, execs: map[string]bool{}}
	modules := map[string]string{} // directory -> module path
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.Name() == "go.mod" {
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if m := regexp.MustCompile(`(?m)^module (\S+)`).FindSubmatch(raw); m != nil {
				modules[filepath.Dir(p)] = string(m[1])
			}
		}
		return nil
	})
	if err != nil {
		return g, fmt.Errorf("walk the repository: %w", err)
	}
	for modDir, modPath := range modules {
		err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			if p != modDir {
				if _, nested := modules[p]; nested || strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules" {
					return filepath.SkipDir
				}
			}
			rel, err := filepath.Rel(modDir, p)
			if err != nil {
				return err
			}
			g.dirOf[path.Join(modPath, filepath.ToSlash(rel))] = filepath.Clean(p)
			return g.scanDir(p)
		})
		if err != nil {
			return g, fmt.Errorf("scan module %s: %w", modPath, err)
		}
	}
	return g, nil
}

// scanDir records the imports of dir's package and whether it execs ffmpeg.
func (g *goPackages) scanDir(dir string) error {
	files, err := goFiles(dir)
	if err != nil {
		return err
	}
	usesExec, namesFFmpeg := false, false
	for _, f := range files {
		pf, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parse %s: %w", f, err)
		}
		for _, imp := range pf.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			usesExec = usesExec || ip == "os/exec"
			g.imports[filepath.Clean(dir)] = append(g.imports[filepath.Clean(dir)], ip)
		}
		ast.Inspect(pf, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && (lit.Value == `"ffmpeg"` || lit.Value == `"ffprobe"`) {
				namesFFmpeg = true
			}
			return true
		})
	}
	g.execs[filepath.Clean(dir)] = usesExec && namesFFmpeg
	return nil
}

// reachesFFmpeg reports whether the package in dir, or any repository
// package it imports transitively, execs ffmpeg.
func (g *goPackages) reachesFFmpeg(dir string) bool {
	seen := map[string]bool{}
	var visit func(d string) bool
	visit = func(d string) bool {
		d = filepath.Clean(d)
		if seen[d] {
			return false
		}
		seen[d] = true
		if g.execs[d] {
			return true
		}
		for _, ip := range g.imports[d] {
			if next, ok := g.dirOf[ip]; ok && visit(next) {
				return true
			}
		}
		return false
	}
	return visit(dir)
}
