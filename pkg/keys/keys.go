// Package keys is the object-key layout of the blob store: where the uploads
// of a video, the objects a run writes and the objects the edge serves live,
// the parsers that take a key apart again, and ValidKey, the shape every key
// must have before it reaches a store.
package keys

import (
	"fmt"
	"strings"

	"github.com/backbeat/backbeat/pkg/ids"
)

// The object layout. Every key names exactly one (video, run, object): the
// video id and the run id are whole segments between slashes, and neither
// may contain a slash, so no key of one video can be, or start with, a key
// or prefix of another video, of any user, or of another run.
//
//	uploads/<vid>/<kind>.<ext>      the app's uploads (audio, cover)
//	runs/<vid>/<run>/<name>         what a run's workers write; never served
//	videos/<vid>/<run>/<name>       public: copied from runs/ by the
//	                                coordinator once the run is ready
//
// The old flat layout (audio/<vid>.m4a, thumbnails/<vid>-square.jpg, …) let
// the thumbnail of video "X-square" be the square thumbnail of video "X",
// and let a new run overwrite the objects an older run was still reading.

// Object names: the last segment of a run key and of a public key. Parsers
// accept only these, so the edge can serve nothing else.
const (
	// ObjectVideo is the rendered MP4 (H.264 + AAC, +faststart).
	ObjectVideo = "video.mp4"
	// ObjectAudio is the cropped AAC track the renderer muxes into the video.
	ObjectAudio = "audio.m4a"
	// ObjectMP3 is the 320 kb/s download of the cropped track.
	ObjectMP3 = "audio.mp3"
	// ObjectAnalysis is the per-frame analysis the renderer draws from.
	ObjectAnalysis = "analysis.json"
	// ObjectThumbnail is the representative frame at the video's own size.
	ObjectThumbnail = "thumbnail.jpg"
	// ObjectSquareThumbnail is the centre-cropped square thumbnail for grids.
	ObjectSquareThumbnail = "square.jpg"
)

// ObjectNames returns every object name of a run, in a fixed order, for
// code that copies or deletes a whole run (promotion, cleanup) and for tests.
func ObjectNames() []string {
	return []string{ObjectVideo, ObjectAudio, ObjectMP3, ObjectAnalysis, ObjectThumbnail, ObjectSquareThumbnail}
}

// ValidObjectName reports whether name is one of ObjectNames.
func ValidObjectName(name string) bool {
	switch name {
	case ObjectVideo, ObjectAudio, ObjectMP3, ObjectAnalysis, ObjectThumbnail, ObjectSquareThumbnail:
		return true
	}
	return false
}

// ValidKey reports whether an object key is relative, clean and free of
// traversal: segments of [A-Za-z0-9._-], none of them "." or "..".
func ValidKey(key string) error {
	if key == "" || len(key) > 512 {
		return fmt.Errorf("invalid object key %q: empty or longer than 512", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid object key %q: empty, . or .. segment", key)
		}
		for _, c := range seg {
			ok := c == '.' || c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
			if !ok {
				return fmt.Errorf("invalid object key %q: character %q not allowed", key, c)
			}
		}
	}
	return nil
}

// Top-level folders of the layout.
const (
	runsRoot    = "runs/"
	publicRoot  = "videos/"
	uploadsRoot = "uploads/"
)

// RunPrefix is the private folder of one run of a video. Workers write only
// under it, so two runs never touch each other's objects and a run that is
// cancelled or superseded leaves the public objects alone. The result is a
// well-formed prefix only for a valid video id and run id.
func RunPrefix(vid, run string) string { return runsRoot + vid + "/" + run + "/" }

// RunKey is the key a run's worker writes object name to. The edge never
// serves it; the coordinator promotes it to PublicKey when the run is ready.
func RunKey(vid, run, name string) string { return RunPrefix(vid, run) + name }

// PublicPrefix is the folder of every promoted object of a video, all runs
// together: what a purge or a deletion of the video covers.
func PublicPrefix(vid string) string { return publicRoot + vid + "/" }

// PublicKey is the key the edge serves object name of a ready run under. Only
// the coordinator writes it, by copying RunKey(vid, run, name) when the run
// becomes ready; since it names the run, a newer run never overwrites the
// bytes behind a URL an app already holds.
func PublicKey(vid, run, name string) string { return PublicPrefix(vid) + run + "/" + name }

// UploadPrefix is where the app's uploads for a video live
// (uploads/<vid>/audio.<ext>, uploads/<vid>/cover.<ext>).
func UploadPrefix(vid string) string { return uploadsRoot + vid + "/" }

// IsUploadKey reports whether key is a valid key under the uploads of video
// vid, so a job can read no other video's upload.
func IsUploadKey(key, vid string) bool {
	rest, ok := strings.CutPrefix(key, UploadPrefix(vid))
	return ok && rest != "" && ids.ValidateVideoID(vid) == nil && ValidKey(key) == nil
}

// IsRunKey reports whether key is a well-formed run key (ParseRunKey) of
// exactly video vid and run run. Workers check every key a job hands them
// with it, so a job can neither read another run's objects nor write where
// the edge serves.
func IsRunKey(key, vid, run string) bool {
	v, r, _, ok := ParseRunKey(key)
	return ok && v == vid && r == run
}

// ParseRunKey splits runs/<vid>/<run>/<name> into its parts. ok is false
// unless vid passes ids.ValidateVideoID, run passes ids.ValidateRunID and name is one
// of ObjectNames, so RunKey(ParseRunKey(key)) == key whenever ok is true.
func ParseRunKey(key string) (vid, run, name string, ok bool) {
	return parseKey(key, runsRoot)
}

// ParsePublicKey splits videos/<vid>/<run>/<name> into its parts, with the
// same rules as ParseRunKey; the edge serves a key only when ok is true.
func ParsePublicKey(key string) (vid, run, name string, ok bool) {
	return parseKey(key, publicRoot)
}

func parseKey(key, root string) (vid, run, name string, ok bool) {
	rest, found := strings.CutPrefix(key, root)
	if !found || ValidKey(key) != nil {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || ids.ValidateVideoID(parts[0]) != nil || ids.ValidateRunID(parts[1]) != nil || !ValidObjectName(parts[2]) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// The flat layout of the first version. Every service, render-coordinator
// included, uses RunKey and PublicKey now; these remain only for the test
// that shows why the layout was dropped. Nothing may call them.

// AudioKey is the AAC track muxed into the video, in the flat layout.
//
// Deprecated: one key per video is shared by all its runs, so a new run
// overwrites what an older one still reads. Use RunKey(vid, run, ObjectAudio).
func AudioKey(vid string) string { return "audio/" + vid + ".m4a" }

// MP3Key is the 320 kb/s download, in the flat layout.
//
// Deprecated: it is public before the run is ready and shared by all runs.
// Use RunKey(vid, run, ObjectMP3), promoted to PublicKey(vid, run, ObjectMP3).
func MP3Key(vid string) string { return "audio/" + vid + ".mp3" }

// AnalysisKey is the per-frame analysis, in the flat layout.
//
// Deprecated: shared by all runs of the video. Use RunKey(vid, run, ObjectAnalysis).
func AnalysisKey(vid string) string { return "analysis/" + vid + ".json" }

// VideoKey is the rendered MP4, in the flat layout.
//
// Deprecated: the edge serves it while the renderer is still writing it and
// a new run overwrites it. Use RunKey(vid, run, ObjectVideo), promoted to
// PublicKey(vid, run, ObjectVideo).
func VideoKey(vid string) string { return "videos/" + vid + ".mp4" }

// ThumbnailKey is the representative frame, in the flat layout.
//
// Deprecated: ThumbnailKey("X-square") == SquareThumbnailKey("X"), so two
// videos share an object. Use RunKey(vid, run, ObjectThumbnail), promoted to
// PublicKey(vid, run, ObjectThumbnail).
func ThumbnailKey(vid string) string { return "thumbnails/" + vid + ".jpg" }

// SquareThumbnailKey is the centre-cropped square thumbnail, in the flat
// layout.
//
// Deprecated: SquareThumbnailKey("X") == ThumbnailKey("X-square"), so two
// videos share an object. Use RunKey(vid, run, ObjectSquareThumbnail),
// promoted to PublicKey(vid, run, ObjectSquareThumbnail).
func SquareThumbnailKey(vid string) string { return "thumbnails/" + vid + "-square.jpg" }
