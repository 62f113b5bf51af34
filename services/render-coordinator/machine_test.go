package coordinator

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backbeat/backbeat/pkg/store"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the transition table in docs/architecture.md")

// TestTransitionTable checks the machine's shape, without a database: no
// transition leaves a terminal status, credits move only where they must,
// and from every state a run can be in, a terminal status is reachable.
func TestTransitionTable(t *testing.T) {
	names := map[string]bool{}
	for _, tr := range Transitions {
		if names[tr.Name] {
			t.Errorf("transition %s declared twice", tr.Name)
		}
		names[tr.Name] = true
		for _, f := range tr.From {
			if f.Terminal() {
				t.Errorf("%s leaves the terminal status %s", tr.Name, f)
			}
		}
		switch {
		case tr.Ledger == LedgerRefund && tr.To != store.StatusError && tr.To != store.StatusCancelled:
			t.Errorf("%s refunds but ends %q", tr.Name, tr.To)
		case (tr.To == store.StatusError || tr.To == store.StatusCancelled) && len(tr.From) > 0 && tr.Ledger != LedgerRefund:
			t.Errorf("%s ends a run that holds credits as %s without a refund", tr.Name, tr.To)
		case tr.To == store.StatusReady && tr.Ledger != LedgerNone:
			t.Errorf("%s moves credits on ready", tr.Name)
		case tr.Ledger == LedgerHold && len(tr.From) > 0:
			t.Errorf("%s holds credits for a run that exists already", tr.Name)
		}
	}
	// Reachability: every (status, stage) a transition produces can reach a
	// terminal status.
	type state struct {
		st store.Status
		sg store.Stage
	}
	stages := []store.Stage{store.StageAudio, store.StageRender, store.StageCDN, store.StageDone}
	next := func(s state) []state {
		var out []state
		for _, tr := range Transitions {
			if st, sg, err := tr.Next(s.st, s.sg); err == nil {
				out = append(out, state{st, sg})
			}
		}
		return out
	}
	var produced []state
	for _, tr := range Transitions {
		if len(tr.From) == 0 {
			produced = append(produced, state{tr.To, tr.ToStage})
			continue
		}
		for _, f := range tr.From {
			for _, sg := range stages {
				if st, nsg, err := tr.Next(f, sg); err == nil {
					produced = append(produced, state{st, nsg})
				}
			}
		}
	}
	for _, start := range produced {
		seen := map[state]bool{start: true}
		queue := []state{start}
		ends := false
		for len(queue) > 0 && !ends {
			s := queue[0]
			queue = queue[1:]
			if s.st.Terminal() {
				ends = true
			}
			for _, n := range next(s) {
				if !seen[n] {
					seen[n] = true
					queue = append(queue, n)
				}
			}
		}
		if !ends {
			t.Errorf("a run in %s @%s can never end", start.st, start.sg)
		}
	}
	// A pure move: audio.done takes a pending run in audio to its render.
	st, sg, err := TAudioDone.Next(store.StatusPending, store.StageAudio)
	if err != nil || st != store.StatusProcessing || sg != store.StageRender {
		t.Errorf("audio-done from pending@audio: %s @%s, %v", st, sg, err)
	}
	if _, _, err := TAudioDone.Next(store.StatusCancelled, store.StageDone); err == nil {
		t.Error("audio-done applied to a cancelled run")
	}
	if !slices.ContainsFunc(Transitions, func(tr Transition) bool { return tr.Name == TSupersede.Name }) {
		t.Error("supersede is not in the table")
	}
}

// TestTransitionTableInDocs: docs/architecture.md shows exactly the table in
// code. `go test -run TestTransitionTableInDocs -update-docs` rewrites it.
func TestTransitionTableInDocs(t *testing.T) {
	const begin, end = "<!-- transitions:begin -->\n", "<!-- transitions:end -->"
	path := filepath.Join("..", "..", "docs", "architecture.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q … %q section", path, strings.TrimSpace(begin), end)
	}
	want := TransitionTable()
	if got := doc[i+len(begin) : j]; got != want {
		if *updateDocs {
			if err := os.WriteFile(path, []byte(doc[:i+len(begin)]+want+doc[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("the transition table in %s differs from machine.go; run go test -run TestTransitionTableInDocs -update-docs\n--- docs\n%s\n--- code\n%s", path, got, want)
	}
}
