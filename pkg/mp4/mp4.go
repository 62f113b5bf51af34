// Package mp4 reads the box structure of ISO base media (MP4) files without
// decoding them: enough to tell whether a video is progressive (+faststart),
// its moov box ahead of its mdat, so a browser starts playing before the
// download ends.
package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxBoxes bounds how many top-level boxes TopLevelBoxes lists, so a file of
// tiny boxes cannot make it read without end.
const maxBoxes = 64

// TopLevelBoxes lists the types of the top-level boxes of the MP4 in r, in
// file order, up to 64 of them. A box of size 0 runs to the end of the file
// and ends the list; a size below the header's own length is an error.
func TopLevelBoxes(r io.ReaderAt) ([]string, error) {
	var order []string
	var off int64
	hdr := make([]byte, 16)
	for len(order) < maxBoxes {
		if _, err := r.ReadAt(hdr[:8], off); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("read box header at %d: %w", off, err)
		}
		size := int64(binary.BigEndian.Uint32(hdr[:4]))
		typ := string(hdr[4:8])
		if size == 1 { // 64-bit size follows
			if _, err := r.ReadAt(hdr[8:16], off+8); err != nil {
				return nil, fmt.Errorf("read box size at %d: %w", off+8, err)
			}
			size = int64(binary.BigEndian.Uint64(hdr[8:16]))
		}
		order = append(order, typ)
		if size == 0 { // to the end of the file
			break
		}
		if size < 8 {
			return nil, fmt.Errorf("bad box size %d at %d", size, off)
		}
		off += size
	}
	return order, nil
}

// Progressive reports whether boxes (as TopLevelBoxes lists them) hold a
// moov box before the first mdat box.
func Progressive(boxes []string) bool {
	moov, mdat := -1, -1
	for i, b := range boxes {
		switch b {
		case "moov":
			moov = i
		case "mdat":
			if mdat < 0 {
				mdat = i
			}
		}
	}
	return moov >= 0 && mdat >= 0 && moov < mdat
}
