package keys_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
)

// owner is what one object key means: which folder of the layout, which
// video, which run (none for uploads) and which object.
type owner struct{ space, vid, run, name string }

// adversarialVideoIDs are ids that differ by a suffix, a separator or a
// character the flat layout folded together, or that look like the layout's
// own words.
var adversarialVideoIDs = []string{
	"X", "X-square", "X-square-square", "Xsquare", "X_square",
	"a_b", "a-b", "ab", "a", "a-", "a_", "a--b",
	"v1", "v10", "v1-1", "v11",
	"runs", "videos", "uploads", "video", "audio", "analysis", "thumbnail", "square",
	"r0123456789abcdef01234567", // shaped like a run id
	strings.Repeat("z", 64), strings.Repeat("z", 63), strings.Repeat("z", 63) + "-",
}

// uploadNames are the uploads the API writes (api.UploadKey: <kind>.<ext>).
var uploadNames = []string{"audio.mp3", "audio.wav", "audio.m4a", "audio.flac", "cover.jpg", "cover.png", "cover.webp"}

// randomVideoID draws a valid id that is often a prefix or an extension of
// another, from a small alphabet so that near-collisions are common.
func randomVideoID(r *rand.Rand) string {
	const first, rest = "aXr1", "aXr1-_"
	b := []byte{first[r.IntN(len(first))]}
	for n := r.IntN(6); n > 0; n-- {
		b = append(b, rest[r.IntN(len(rest))])
	}
	return string(b)
}

// TestTwoVideosNeverShareAnObject builds every key of the layout for many
// (video, run) pairs, adversarial and random, and checks that each key has
// exactly one owner and that no key of one video lies under a prefix of
// another video (so listing, copying or deleting one video's folder can
// never reach another's objects).
func TestTwoVideosNeverShareAnObject(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(8, 4)) // fixed seed: a failure replays
	vids := append([]string(nil), adversarialVideoIDs...)
	for range 150 {
		vids = append(vids, randomVideoID(r))
	}
	seen := map[string]bool{}
	uniq := vids[:0]
	for _, v := range vids {
		require.NoError(t, ids.ValidateVideoID(v))
		if !seen[v] {
			seen[v] = true
			uniq = append(uniq, v)
		}
	}
	vids = uniq
	runs := []string{"r" + strings.Repeat("0", 24), "r" + strings.Repeat("0", 23) + "1", "r" + strings.Repeat("f", 24), ids.NewRunID()}
	for _, run := range runs {
		require.NoError(t, ids.ValidateRunID(run))
	}

	owners := map[string]owner{}
	add := func(key string, o owner) {
		t.Helper()
		require.NoError(t, keys.ValidKey(key), "%+v", o)
		if prev, dup := owners[key]; dup {
			t.Fatalf("key %q names two objects: %+v and %+v", key, prev, o)
		}
		owners[key] = o
	}
	for _, vid := range vids {
		for _, name := range uploadNames {
			add(keys.UploadPrefix(vid)+name, owner{"uploads", vid, "", name})
		}
		for _, run := range runs {
			for _, name := range keys.ObjectNames() {
				add(keys.RunKey(vid, run, name), owner{"runs", vid, run, name})
				add(keys.PublicKey(vid, run, name), owner{"videos", vid, run, name})
			}
		}
	}
	require.Len(t, owners, len(vids)*(len(uploadNames)+2*len(runs)*len(keys.ObjectNames())))

	for key, o := range owners {
		// Every key parses back to its one owner.
		switch o.space {
		case "runs":
			vid, run, name, ok := keys.ParseRunKey(key)
			require.True(t, ok, key)
			require.Equal(t, o, owner{"runs", vid, run, name})
			require.True(t, keys.IsRunKey(key, o.vid, o.run))
			_, _, _, ok = keys.ParsePublicKey(key)
			require.False(t, ok, "a run key is never public: %s", key)
		case "videos":
			vid, run, name, ok := keys.ParsePublicKey(key)
			require.True(t, ok, key)
			require.Equal(t, o, owner{"videos", vid, run, name})
			require.False(t, keys.IsRunKey(key, o.vid, o.run), "a public key is not a run key: %s", key)
		case "uploads":
			require.True(t, keys.IsUploadKey(key, o.vid))
			_, _, _, ok := keys.ParseRunKey(key)
			require.False(t, ok, key)
			_, _, _, ok = keys.ParsePublicKey(key)
			require.False(t, ok, key)
		}
		// No other video's (or other run's) folder contains it; with the
		// parse above, IsRunKey and IsUploadKey hold for the owner only.
		// Plain ifs: this loop runs millions of times.
		for _, vid := range vids {
			if vid == o.vid {
				continue
			}
			if strings.HasPrefix(key, keys.UploadPrefix(vid)) || strings.HasPrefix(key, keys.PublicPrefix(vid)) {
				t.Fatalf("key %q of %+v lies under a folder of video %q", key, o, vid)
			}
			for _, run := range runs {
				if strings.HasPrefix(key, keys.RunPrefix(vid, run)) {
					t.Fatalf("key %q of %+v lies under run %s of video %q", key, o, run, vid)
				}
			}
		}
		for _, run := range runs {
			if o.space == "runs" && run != o.run && (strings.HasPrefix(key, keys.RunPrefix(o.vid, run)) || keys.IsRunKey(key, o.vid, run)) {
				t.Fatalf("key %q of %+v lies under another run %s", key, o, run)
			}
		}
	}
}

// TestOldLayoutCollided documents defect 4 of issue 8 as found: in the flat
// layout the thumbnail of video "X-square" is the square thumbnail of video
// "X", whoever owns either. This is why the flat functions are deprecated;
// TestTwoVideosNeverShareAnObject shows the new layout has no such pair.
func TestOldLayoutCollided(t *testing.T) {
	t.Parallel()
	require.NoError(t, ids.ValidateVideoID("X"))
	require.NoError(t, ids.ValidateVideoID("X-square"))
	require.Equal(t, keys.SquareThumbnailKey("X"), keys.ThumbnailKey("X-square"), "the flat layout gives two videos one object")

	run := ids.NewRunID()
	require.NotEqual(t, keys.RunKey("X", run, keys.ObjectSquareThumbnail), keys.RunKey("X-square", run, keys.ObjectThumbnail))
	require.NotEqual(t, keys.PublicKey("X", run, keys.ObjectSquareThumbnail), keys.PublicKey("X-square", run, keys.ObjectThumbnail))
}

func TestValidateRunID(t *testing.T) {
	t.Parallel()
	for range 100 {
		require.NoError(t, ids.ValidateRunID(ids.NewRunID()))
	}
	require.NoError(t, ids.ValidateRunID("r0123456789abcdef01234567"))
	for _, bad := range []string{"", "r", "run1", "r-older", "rsomeoneelse",
		"r0123456789abcdef0123456", "r0123456789abcdef012345678", "R0123456789abcdef01234567",
		"r0123456789ABCDEF01234567", "x0123456789abcdef01234567", "r0123456789abcdef0123456g",
		"r0123456789abcdef012345/7", "r0123456789abcdef0123456\x00"} {
		require.Error(t, ids.ValidateRunID(bad), "%q", bad)
	}
}

func TestLayout(t *testing.T) {
	t.Parallel()
	const run = "r0123456789abcdef01234567"
	require.Equal(t, "runs/v1/"+run+"/", keys.RunPrefix("v1", run))
	require.Equal(t, "runs/v1/"+run+"/video.mp4", keys.RunKey("v1", run, keys.ObjectVideo))
	require.Equal(t, "videos/v1/", keys.PublicPrefix("v1"))
	require.Equal(t, "videos/v1/"+run+"/square.jpg", keys.PublicKey("v1", run, keys.ObjectSquareThumbnail))
	require.Equal(t, "uploads/v1/", keys.UploadPrefix("v1"))
	require.Equal(t, []string{"video.mp4", "audio.m4a", "audio.mp3", "analysis.json", "thumbnail.jpg", "square.jpg"}, keys.ObjectNames())

	for _, bad := range []string{
		"runs/v1/" + run + "/other.mp4",   // not an object name
		"runs/v1/" + run + "/a/video.mp4", // nested
		"runs/v1/" + run + "/",            // a prefix, not a key
		"runs/v1/run1/video.mp4",          // not a run id
		"runs/-v/" + run + "/video.mp4",   // not a video id
		"runs/../" + run + "/video.mp4",   // traversal
		"runs//" + run + "/video.mp4",     // empty video
		"/runs/v1/" + run + "/video.mp4",  // absolute
		"runs/v1/" + run + "/video.mp4/",  // trailing slash
		"x/runs/v1/" + run + "/video.mp4", // another root
		"videos/v1/" + run + "/video.mp4", // public, not run
		"runs/v1/" + run,                  // no name
	} {
		_, _, _, ok := keys.ParseRunKey(bad)
		require.False(t, ok, "%q", bad)
		require.False(t, keys.IsRunKey(bad, "v1", run), "%q", bad)
	}
	for _, bad := range []string{"videos/v1.mp4", "videos/v1/" + run, "videos/v1/" + run + "/x.jpg", "thumbnails/v1.jpg", "runs/v1/" + run + "/video.mp4"} {
		_, _, _, ok := keys.ParsePublicKey(bad)
		require.False(t, ok, "%q", bad)
	}
	require.False(t, keys.IsUploadKey("uploads/v1/", "v1"))
	require.False(t, keys.IsUploadKey("uploads/v1/../v2/audio.mp3", "v1"))
	require.False(t, keys.IsUploadKey("uploads/v10/audio.mp3", "v1"))
	require.True(t, keys.IsUploadKey("uploads/v1/audio.mp3", "v1"))
}

// FuzzObjectKeys checks the layout on fuzzed ids: for a valid video id and
// run id every key is a valid key under its prefix that parses back to its
// parts, and for anything else the keys are refused; and any string that
// parses is exactly the key its parts build, so two different (video, run,
// object) can never parse from, or build, one key.
func FuzzObjectKeys(f *testing.F) {
	for _, vid := range []string{"X", "X-square", "a_b", "a-b", "v1", "../x", "a/b", "", "-a"} {
		for _, run := range []string{ids.NewRunID(), "r0123456789abcdef01234567", "run1", "", "r0123456789abcdef0123456/"} {
			f.Add(vid, run, uint8(0), "runs/"+vid+"/"+run+"/video.mp4")
		}
	}
	f.Add("v", "r0123456789abcdef01234567", uint8(4), "videos/v/r0123456789abcdef01234567/thumbnail.jpg")
	f.Add("v", "r0123456789abcdef01234567", uint8(5), "thumbnails/v-square.jpg")
	names := keys.ObjectNames()
	f.Fuzz(func(t *testing.T, vid, run string, n uint8, raw string) {
		name := names[int(n)%len(names)]
		valid := ids.ValidateVideoID(vid) == nil && ids.ValidateRunID(run) == nil
		rk, pk := keys.RunKey(vid, run, name), keys.PublicKey(vid, run, name)

		v, r, nm, ok := keys.ParseRunKey(rk)
		if ok != valid {
			t.Fatalf("ParseRunKey(%q) ok=%v, ids valid=%v", rk, ok, valid)
		}
		if keys.IsRunKey(rk, vid, run) != valid {
			t.Fatalf("IsRunKey(%q, %q, %q) != %v", rk, vid, run, valid)
		}
		pv, pr, pn, pok := keys.ParsePublicKey(pk)
		if pok != valid {
			t.Fatalf("ParsePublicKey(%q) ok=%v, ids valid=%v", pk, pok, valid)
		}
		if valid {
			for _, k := range []string{rk, pk} {
				if err := keys.ValidKey(k); err != nil {
					t.Fatalf("layout key invalid: %v", err)
				}
			}
			if !strings.HasPrefix(rk, keys.RunPrefix(vid, run)) || !strings.HasPrefix(pk, keys.PublicPrefix(vid)) {
				t.Fatalf("keys %q, %q not under their prefixes", rk, pk)
			}
			if v != vid || r != run || nm != name || pv != vid || pr != run || pn != name {
				t.Fatalf("keys do not parse back: %q → %q %q %q; %q → %q %q %q", rk, v, r, nm, pk, pv, pr, pn)
			}
			if keys.IsRunKey(pk, vid, run) {
				t.Fatalf("public key %q passes IsRunKey", pk)
			}
			if _, _, _, ok := keys.ParsePublicKey(rk); ok {
				t.Fatalf("run key %q parses as public", rk)
			}
		}

		// Parsing is the exact inverse of building.
		if v, r, nm, ok := keys.ParseRunKey(raw); ok {
			if got := keys.RunKey(v, r, nm); got != raw {
				t.Fatalf("ParseRunKey(%q) = %q %q %q, which builds %q", raw, v, r, nm, got)
			}
			if keys.ValidKey(raw) != nil || ids.ValidateVideoID(v) != nil || ids.ValidateRunID(r) != nil {
				t.Fatalf("ParseRunKey accepted %q", raw)
			}
		}
		if v, r, nm, ok := keys.ParsePublicKey(raw); ok {
			if got := keys.PublicKey(v, r, nm); got != raw {
				t.Fatalf("ParsePublicKey(%q) = %q %q %q, which builds %q", raw, v, r, nm, got)
			}
			if keys.ValidKey(raw) != nil {
				t.Fatalf("ParsePublicKey accepted invalid key %q", raw)
			}
		}
	})
}

// Example of the keys of one run, for the doc.
func ExampleRunKey() {
	const run = "r0123456789abcdef01234567"
	fmt.Println(keys.RunKey("X-square", run, keys.ObjectThumbnail))
	fmt.Println(keys.PublicKey("X", run, keys.ObjectSquareThumbnail))
	// Output:
	// runs/X-square/r0123456789abcdef01234567/thumbnail.jpg
	// videos/X/r0123456789abcdef01234567/square.jpg
}

func TestValidKey(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"videos/v1.mp4", "uploads/v1/audio.wav", "thumbnails/v1-square.jpg"} {
		require.NoError(t, keys.ValidKey(ok), ok)
	}
	for _, bad := range []string{"", "/abs", "a//b", "../x", "videos/../x", "a/./b", "a\\b", "a\x00b", "a/", "a b"} {
		require.Error(t, keys.ValidKey(bad), "%q", bad)
	}
}
