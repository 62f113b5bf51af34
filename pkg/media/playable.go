package media

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// CheckPlayable decodes every frame and sample of a video with ffmpeg (any
// decode error fails) and checks that the MP4's moov box comes before its
// mdat (+faststart), so a browser starts playing before the download ends.
func CheckPlayable(ctx context.Context, path string) error {
	order, err := topLevelBoxes(path)
	if err != nil {
		return err
	}
	moov, mdat := -1, -1
	for i, b := range order {
		switch b {
		case "moov":
			moov = i
		case "mdat":
			if mdat < 0 {
				mdat = i
			}
		}
	}
	if moov < 0 || mdat < 0 || moov > mdat {
		return fmt.Errorf("%s: moov is not before mdat (boxes %v): not progressive (+faststart)", path, order)
	}
	arg, err := localArg(path)
	if err != nil {
		return err
	}
	if err := Run(ctx, []string{"-v", "error", "-xerror", "-i", arg, "-f", "null", "-"}); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// topLevelBoxes lists the types of an MP4's top-level boxes in file order.
func topLevelBoxes(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	var order []string
	var off int64
	hdr := make([]byte, 16)
	for len(order) < 64 {
		if _, err := f.ReadAt(hdr[:8], off); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		size := int64(binary.BigEndian.Uint32(hdr[:4]))
		typ := string(hdr[4:8])
		if size == 1 { // 64-bit size follows
			if _, err := f.ReadAt(hdr[8:16], off+8); err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			size = int64(binary.BigEndian.Uint64(hdr[8:16]))
		}
		order = append(order, typ)
		if size == 0 { // to the end of the file
			break
		}
		if size < 8 {
			return nil, fmt.Errorf("%s: bad box size %d at %d", path, size, off)
		}
		off += size
	}
	return order, nil
}
