// Package ids validates the identifiers that reach subjects, object keys and
// file paths, so that a video id such as "../x" is refused before it can name
// anything, mints run ids, and fixes the object keys of every video and run
// (keys.go).
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

// runIDBytes is the entropy of a run id: 96 random bits make a collision
// between two runs of the same video practically impossible.
const runIDBytes = 12

// NewRunID returns a fresh run id: "r" followed by 12 random bytes in
// lowercase hex (25 characters), the only form ValidateRunID accepts.
func NewRunID() string {
	var b [runIDBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return "r" + hex.EncodeToString(b[:])
}

// ValidateRunID reports whether id is a run id as NewRunID makes them: "r"
// and 24 lowercase hex digits. Run ids name a folder of object keys
// (RunKey), so workers refuse any other form instead of writing under it.
func ValidateRunID(id string) error {
	if len(id) != 1+2*runIDBytes || id[0] != 'r' {
		return fmt.Errorf("invalid run id %q: want r and %d lowercase hex digits", id, 2*runIDBytes)
	}
	for _, c := range id[1:] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("invalid run id %q: want r and %d lowercase hex digits", id, 2*runIDBytes)
		}
	}
	return nil
}
