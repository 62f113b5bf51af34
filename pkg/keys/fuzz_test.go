package keys_test

import (
	"path"
	"strings"
	"testing"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
)

// FuzzParseKey feeds arbitrary keys (what a URL path or a job hands a
// service) to the key parsers and checks the invariants the edge and the
// workers rely on: a key that parses rebuilds to itself, lies under its own
// run's or video's prefix, is a valid key and belongs to one space only; a
// valid key is clean and cannot climb out of its prefix; an upload key
// belongs to one video at most.
func FuzzParseKey(f *testing.F) {
	run := "r0123456789abcdef01234567"
	for _, s := range []string{
		keys.RunKey("v1", run, keys.ObjectVideo),
		keys.PublicKey("v1", run, keys.ObjectSquareThumbnail),
		keys.UploadPrefix("v1") + "audio.wav",
		"videos/v1/" + run + "/../x/video.mp4",
		"runs/v1//" + run + "/video.mp4",
		"videos/v1.mp4", "uploads/v1/", "uploads/v1/a/../../v2/audio.wav",
		"/videos/v1/" + run + "/video.mp4", "videos/-v/" + run + "/video.mp4",
		"videos/v1/R0123456789ABCDEF01234567/video.mp4", "",
	} {
		f.Add(s, "v1")
	}
	f.Fuzz(func(t *testing.T, key, vid string) {
		valid := keys.ValidKey(key) == nil
		if valid {
			if path.Clean(key) != key || path.IsAbs(key) || hasDotDotSegment(key) || len(key) > 512 {
				t.Fatalf("ValidKey accepts %q, which is not a clean relative key", key)
			}
			if strings.ContainsAny(key, "\\\x00 %?#") {
				t.Fatalf("ValidKey accepts %q with a character a URL or a file system reads specially", key)
			}
		}
		rv, rr, rn, rok := keys.ParseRunKey(key)
		pv, pr, pn, pok := keys.ParsePublicKey(key)
		if rok && pok {
			t.Fatalf("%q is both a run key and a public key", key)
		}
		check := func(kind string, v, r, n string, rebuilt, prefix string) {
			if rebuilt != key {
				t.Fatalf("%s key %q rebuilds to %q", kind, key, rebuilt)
			}
			if !strings.HasPrefix(key, prefix) || strings.Contains(key, "..") || !valid {
				t.Fatalf("%s key %q escapes %q or is not a valid key", kind, key, prefix)
			}
			if ids.ValidateVideoID(v) != nil || ids.ValidateRunID(r) != nil || !keys.ValidObjectName(n) {
				t.Fatalf("%s key %q parsed into invalid parts %q %q %q", kind, key, v, r, n)
			}
		}
		if rok {
			check("run", rv, rr, rn, keys.RunKey(rv, rr, rn), keys.RunPrefix(rv, rr))
			if !keys.IsRunKey(key, rv, rr) {
				t.Fatalf("IsRunKey refuses the run key %q", key)
			}
		}
		if pok {
			check("public", pv, pr, pn, keys.PublicKey(pv, pr, pn), keys.PublicPrefix(pv))
		}
		if keys.IsRunKey(key, vid, run) && !rok {
			t.Fatalf("IsRunKey accepts %q, which does not parse", key)
		}
		if keys.IsUploadKey(key, vid) {
			if !valid || ids.ValidateVideoID(vid) != nil || !strings.HasPrefix(key, keys.UploadPrefix(vid)) || rok || pok {
				t.Fatalf("IsUploadKey(%q, %q) accepts a key outside the video's uploads", key, vid)
			}
			// The owner is the second segment: no other video owns the key.
			if owner := strings.Split(key, "/")[1]; owner != vid || keys.IsUploadKey(key, vid+"x") {
				t.Fatalf("upload key %q belongs to %q and to %q", key, vid, owner)
			}
		}
	})
}

func hasDotDotSegment(key string) bool {
	for _, s := range strings.Split(key, "/") {
		if s == "." || s == ".." {
			return true
		}
	}
	return false
}

// FuzzBuildKey builds keys from arbitrary ids: for valid ids, the key parses
// back into them; for an invalid video or run id, the key does not parse
// (so a builder handed a bad id never yields a key the edge serves).
func FuzzBuildKey(f *testing.F) {
	f.Add("v1", "r0123456789abcdef01234567", uint8(0))
	f.Add("../v1", "r0123456789abcdef01234567", uint8(1))
	f.Add("v1/r0123456789abcdef01234567", "video.mp4", uint8(2))
	f.Add("v1", "r0123456789ABCDEF01234567", uint8(3))
	f.Add("a", "r0123456789abcdef0123456", uint8(4))
	f.Fuzz(func(t *testing.T, vid, run string, n uint8) {
		names := keys.ObjectNames()
		name := names[int(n)%len(names)]
		validIDs := ids.ValidateVideoID(vid) == nil && ids.ValidateRunID(run) == nil
		for _, b := range []struct {
			kind  string
			key   string
			parse func(string) (string, string, string, bool)
		}{
			{"run", keys.RunKey(vid, run, name), keys.ParseRunKey},
			{"public", keys.PublicKey(vid, run, name), keys.ParsePublicKey},
		} {
			v, r, got, ok := b.parse(b.key)
			if validIDs && (!ok || v != vid || r != run || got != name) {
				t.Fatalf("%s key %q of valid ids parses to %q %q %q %v", b.kind, b.key, v, r, got, ok)
			}
			if !validIDs && ok {
				t.Fatalf("%s key %q of invalid ids %q %q parses", b.kind, b.key, vid, run)
			}
		}
		if validIDs && !keys.IsUploadKey(keys.UploadPrefix(vid)+"audio.wav", vid) {
			t.Fatalf("IsUploadKey refuses the upload of valid video %q", vid)
		}
	})
}
