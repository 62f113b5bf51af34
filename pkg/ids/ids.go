// Package ids validates the identifiers that reach subjects, object keys and
// file paths, so that a video id such as "../x" is refused before it can name
// anything, and mints run ids.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// ValidateVideoID reports whether id is safe as a subject token, an object key
// segment and a file name: 1–64 of [A-Za-z0-9_-], not starting with - or _.
func ValidateVideoID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("invalid video id %q: want 1-64 characters of [A-Za-z0-9_-] starting with a letter or digit", id)
	}
	return nil
}

// ValidateUserID applies the same rule to user ids.
func ValidateUserID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("invalid user id %q: want 1-64 characters of [A-Za-z0-9_-] starting with a letter or digit", id)
	}
	return nil
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

// NewRunID returns a random 16-byte hex id for a run.
func NewRunID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return "r" + hex.EncodeToString(b[:])
}

// Keys of the objects of one video, as DESIGN.md fixes them.

// AudioKey is the AAC track muxed into the video.
func AudioKey(vid string) string { return "audio/" + vid + ".m4a" }

// MP3Key is the 320 kb/s download.
func MP3Key(vid string) string { return "audio/" + vid + ".mp3" }

// AnalysisKey is the per-frame analysis the renderer draws from.
func AnalysisKey(vid string) string { return "analysis/" + vid + ".json" }

// VideoKey is the rendered MP4.
func VideoKey(vid string) string { return "videos/" + vid + ".mp4" }

// ThumbnailKey is the representative frame.
func ThumbnailKey(vid string) string { return "thumbnails/" + vid + ".jpg" }

// SquareThumbnailKey is the centre-cropped square thumbnail.
func SquareThumbnailKey(vid string) string { return "thumbnails/" + vid + "-square.jpg" }

// UploadPrefix is where the app's uploads for a video live.
func UploadPrefix(vid string) string { return "uploads/" + vid + "/" }
