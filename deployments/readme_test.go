package deployments

import (
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
	"testing"
)

// pendingFiles are files the README names that another change adds; each is
// reported, not failed, while it is missing.
var pendingFiles = map[string]string{
	"nats/provision.yaml": "the provision Job, added with `backbeat provision`",
}

// readme returns README.md.
func readme(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// section returns the body of the "## title" section of a Markdown text.
func section(t *testing.T, md, title string) string {
	t.Helper()
	_, after, ok := strings.Cut(md, "\n## "+title+"\n")
	if !ok {
		t.Fatalf("README.md has no section %q", title)
	}
	body, _, _ := strings.Cut(after, "\n## ")
	return body
}

// codeBlocks returns the lines of the fenced code blocks of a Markdown text,
// with continuation lines ("\" at the end) joined.
func codeBlocks(md string) []string {
	var out []string
	in := false
	cont := ""
	for _, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			in = !in
			continue
		}
		if !in {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cont += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		out = append(out, cont+trimmed)
		cont = ""
	}
	return out
}

// TestReadmeAlertsMatchTheCode: every alert kind the code sends (a Kind:
// "…" in an alert.Alert literal under ../services or ../pkg) has a row in
// the README's Alerts table, and every row is a kind the code sends.
func TestReadmeAlertsMatchTheCode(t *testing.T) {
	sent := alertKinds(t, filepath.Join(repoRoot, "services"), filepath.Join(repoRoot, "pkg"))
	if len(sent) == 0 {
		t.Fatal("found no alert.Alert{Kind: …} in the code: the scan is broken")
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(section(t, readme(t), "Alerts"), -1) {
		documented[m[1]] = true
	}
	sameSets(t, "alert", "Alerts", sent, documented)
}

// sameSets reports each name the code has (with where) and the README's
// table does not, and each the table has that the code does not.
func sameSets(t *testing.T, what, table string, code map[string]string, documented map[string]bool) {
	t.Helper()
	for n, where := range code {
		if !documented[n] {
			t.Errorf("%s %q (%s) has no row in the README's %s table", what, n, where, table)
		}
	}
	for n := range documented {
		if _, ok := code[n]; !ok {
			t.Errorf("the README's %s table lists %s %q, which is not in the code", table, what, n)
		}
	}
}

// TestReadmeMetricsMatchTheCode: the Metrics table names exactly the metrics
// the code registers (every `Name: "backbeat_…"` in a non-test Go file).
func TestReadmeMetricsMatchTheCode(t *testing.T) {
	defined := map[string]string{}
	name := regexp.MustCompile(`Name:\s*"(backbeat_[a-z_]+)"`)
	for _, root := range []string{filepath.Join(repoRoot, "services"), filepath.Join(repoRoot, "pkg"), filepath.Join(repoRoot, "cmd")} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range name.FindAllStringSubmatch(string(b), -1) {
				defined[m[1]] = p
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(defined) == 0 {
		t.Fatal("found no metric in the code: the scan is broken")
	}
	sameSets(t, "metric", "Metrics", defined, readmeMetrics(t))
}

// TestFrontReadmeNamesEveryMetric: the repository's README names, under
// "Operating it", exactly the metrics this README's table lists.
func TestFrontReadmeNamesEveryMetric(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]string{}
	for _, m := range regexp.MustCompile("`(backbeat_[a-z_]+)`").FindAllStringSubmatch(section(t, string(raw), "Operating it"), -1) {
		named[m[1]] = "README.md"
	}
	table := readmeMetrics(t)
	for m := range table {
		if named[m] == "" {
			t.Errorf("README.md (Operating it) does not name %s, which deployments/README.md lists", m)
		}
	}
	for m := range named {
		if !table[m] {
			t.Errorf("README.md (Operating it) names %s, which deployments/README.md does not list", m)
		}
	}
}

// readmeMetrics returns the metrics the README's Metrics table lists.
func readmeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(backbeat_[a-z_]+)` \\|").FindAllStringSubmatch(section(t, readme(t), "Metrics"), -1) {
		documented[m[1]] = true
	}
	return documented
}

// alertKinds maps each string Kind of an Alert composite literal (alert.Alert
// outside package alert, Alert inside it) in the non-test Go files under
// roots to one place that sends it.
func alertKinds(t *testing.T, roots ...string) map[string]string {
	t.Helper()
	kinds := map[string]string{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.CompositeLit)
				if !ok || !isAlertType(lit.Type, f.Name.Name) {
					return true
				}
				for _, el := range lit.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					key, ok := kv.Key.(*ast.Ident)
					val, isLit := kv.Value.(*ast.BasicLit)
					if !ok || key.Name != "Kind" {
						continue
					}
					if !isLit || val.Kind != token.STRING {
						t.Errorf("%s: an alert Kind that is not a string literal: the README check cannot see it", fset.Position(kv.Pos()))
						continue
					}
					kind, _ := strconv.Unquote(val.Value)
					kinds[kind] = fset.Position(kv.Pos()).String()
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return kinds
}

// isAlertType reports whether a composite literal's type is alert.Alert.
func isAlertType(e ast.Expr, pkg string) bool {
	switch e := e.(type) {
	case *ast.SelectorExpr:
		x, ok := e.X.(*ast.Ident)
		return ok && x.Name == "alert" && e.Sel.Name == "Alert"
	case *ast.Ident:
		return pkg == "alert" && e.Name == "Alert"
	}
	return false
}

// TestReadmeCommandsExist: every `backbeat <command>` run in a README code
// block is a key of the commands map in ../cmd/backbeat/main.go.
func TestReadmeCommandsExist(t *testing.T) {
	known := cliCommands(t)
	used := readmeCommands(readme(t))
	if len(used) == 0 {
		t.Fatal("no `backbeat <command>` in the README's code blocks: the scan is broken")
	}
	for _, c := range used {
		if !known[c] {
			t.Errorf("README runs `backbeat %s`, which cmd/backbeat/main.go's commands map lacks", c)
		}
	}
}

// readmeCommands returns the subcommands of every backbeat invocation at a
// command position in the README's code blocks: the first word of a line or
// of a command after &&, ||, ;, | or a kubectl "--", past VAR=value
// assignments.
func readmeCommands(md string) []string {
	var out []string
	for _, line := range codeBlocks(md) {
		for _, cmd := range regexp.MustCompile(`&&|\|\||;|\||\s--\s`).Split(line, -1) {
			words := strings.Fields(strings.TrimPrefix(strings.TrimSpace(cmd), "$ "))
			for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
				words = words[1:]
			}
			if len(words) >= 2 && (words[0] == "backbeat" || strings.HasSuffix(words[0], "/backbeat")) && !strings.HasPrefix(words[1], "-") {
				if !slices.Contains(out, words[1]) {
					out = append(out, words[1])
				}
			}
		}
	}
	return out
}

// cliCommands parses ../cmd/backbeat/main.go and returns the string keys of
// its package-level `commands` map literal.
func cliCommands(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(repoRoot, "cmd", "backbeat", "main.go"), nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if name.Name != "commands" || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.CompositeLit)
				if !ok {
					t.Fatal("cmd/backbeat/main.go: commands is not a map literal")
				}
				for _, el := range lit.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.BasicLit); ok && k.Kind == token.STRING {
							s, _ := strconv.Unquote(k.Value)
							keys[s] = true
						}
					}
				}
			}
		}
	}
	if len(keys) == 0 {
		t.Fatal("cmd/backbeat/main.go: no commands map with string keys")
	}
	return keys
}

// TestReadmeFilesExist: every file the README names in backticks (a name
// ending in .yaml, .yml, .conf, .go, .md or .json, or a Dockerfile) exists,
// relative to this folder or, failing that, to the repository root; <x> and
// * are wildcards.
func TestReadmeFilesExist(t *testing.T) {
	pathLike := regexp.MustCompile(`^[\w.<>*/-]+\.(ya?ml|conf|go|md|json)$`)
	checked := 0
	for _, m := range regexp.MustCompile("`([^`\\s]+)`").FindAllStringSubmatch(readme(t), -1) {
		name := m[1]
		if !pathLike.MatchString(name) && path.Base(name) != "Dockerfile" && name != ".dockerignore" {
			continue
		}
		checked++
		glob := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(name, "*")
		here, _ := filepath.Glob(glob)
		root, _ := filepath.Glob(filepath.Join(repoRoot, glob))
		if len(here) > 0 || len(root) > 0 {
			continue
		}
		if why, ok := pendingFiles[name]; ok {
			t.Logf("README names %s (%s), which is not here yet", name, why)
			continue
		}
		t.Errorf("README names %s, which exists neither in deployments/ nor at the repository root", name)
	}
	if checked == 0 {
		t.Fatal("no file names found in the README: the scan is broken")
	}
}
