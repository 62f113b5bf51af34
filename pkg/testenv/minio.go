package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/backbeat/backbeat/pkg/blob"
)

// MinIO returns a store on a fresh bucket of the MinIO named by TEST_S3_ENDPOINT,
// TEST_S3_ACCESS_KEY and TEST_S3_SECRET_KEY, removed with its objects when the
// test ends. Parallel tests never share a bucket. It fails the test (never
// skips) when the environment is missing, so CI cannot silently pass.
func MinIO(t testing.TB) *blob.MinIO {
	t.Helper()
	endpoint, access, secret := os.Getenv("TEST_S3_ENDPOINT"), os.Getenv("TEST_S3_ACCESS_KEY"), os.Getenv("TEST_S3_SECRET_KEY")
	if endpoint == "" || access == "" || secret == "" {
		t.Fatal("testenv: TEST_S3_ENDPOINT, TEST_S3_ACCESS_KEY and TEST_S3_SECRET_KEY must be set: " +
			"run `make test`, or `scripts/services.sh start && eval \"$(scripts/services.sh env)\"`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := blob.MinIOConfig{
		Endpoint:  endpoint,
		AccessKey: access,
		SecretKey: secret,
		Bucket:    BucketName(t.Name()),
		Secure:    os.Getenv("TEST_S3_SECURE") == "true",
	}
	m, err := blob.NewMinIO(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: MinIO at %s: %v (is it running? `scripts/services.sh start`)", endpoint, err)
	}
	t.Cleanup(func() {
		// t.Context() is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.RemoveBucket(ctx); err != nil {
			t.Errorf("testenv: remove bucket %s: %v", cfg.Bucket, err)
		}
	})
	return m
}

// BucketName derives a valid, unique S3 bucket name from a test name:
// lowercase [a-z0-9-], at most 63 characters, with a random suffix.
func BucketName(testName string) string {
	var b strings.Builder
	dash := true // no leading dash, no double dashes
	for _, c := range strings.ToLower(testName) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	suffix := hex.EncodeToString(rnd[:])
	base := strings.TrimRight(b.String(), "-")
	if limit := 63 - len(suffix) - 1 - 2; len(base) > limit {
		base = strings.TrimRight(base[:limit], "-")
	}
	if base == "" {
		return "t-" + suffix
	}
	return "t-" + base + "-" + suffix
}
