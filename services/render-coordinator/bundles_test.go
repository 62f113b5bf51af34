package coordinator

import (
	"context"
	"testing"

	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/store"
)

// TestBundlesFileThatDropsAReferencedBundleIsRefused: a coordinator started
// with a bundles file that lost "pro" while a user is on it refuses to run.
func TestBundlesFileThatDropsAReferencedBundleIsRefused(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite://:memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.UpsertUser(ctx, store.User{ID: "u1", Balance: 10, Bundle: "pro"}); err != nil {
		t.Fatal(err)
	}
	w := &sim{}
	deps := Deps{Store: db, Pub: &simBus{w: w, subj: bus.Subjects{Prefix: "t"}}, Runs: &simKV{w: w}, Blob: &memBlob{w: w},
		Progress: &simProgress{}, Log: zap.NewNop()}
	only := DefaultBundles()
	delete(only, "pro")
	svc, err := New(Config{Bundles: only}, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.CheckBundles(ctx); err == nil {
		t.Fatal("a configuration without the pro bundle was accepted while u1 is on it")
	}
	svc, err = New(Config{Bundles: DefaultBundles()}, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.CheckBundles(ctx); err != nil {
		t.Fatalf("the default bundles were refused: %v", err)
	}
}
