// Package ids validates the identifiers that reach subjects, object keys and
// file paths, so that a video id such as "../x" is refused before it can name
// anything, and mints run ids. Where the objects of a video and a run live is
// pkg/keys.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
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
// (keys.RunKey), so workers refuse any other form instead of writing under it.
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
