package mp4_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/mp4"
)

// box is one top-level box: a 32-bit size, or 1 and a 64-bit size (large).
func box(typ string, payload int, large bool) []byte {
	var b []byte
	if large {
		b = binary.BigEndian.AppendUint32(b, 1)
		b = append(b, typ...)
		b = binary.BigEndian.AppendUint64(b, uint64(16+payload))
	} else {
		b = binary.BigEndian.AppendUint32(b, uint32(8+payload))
		b = append(b, typ...)
	}
	return append(b, make([]byte, payload)...)
}

func TestTopLevelBoxes(t *testing.T) {
	t.Parallel()
	file := append(append(append(box("ftyp", 12, false), box("moov", 40, false)...), box("mdat", 100, true)...), box("free", 3, false)...)
	got, err := mp4.TopLevelBoxes(bytes.NewReader(file))
	require.NoError(t, err)
	require.Equal(t, []string{"ftyp", "moov", "mdat", "free"}, got)
	require.True(t, mp4.Progressive(got))
	require.False(t, mp4.Progressive([]string{"ftyp", "mdat", "moov"}))
	require.False(t, mp4.Progressive([]string{"ftyp", "moov"}))

	_, err = mp4.TopLevelBoxes(bytes.NewReader([]byte("\x00\x00\x00\x04ftyp")))
	require.ErrorContains(t, err, "bad box size 4")
}

// FuzzTopLevelBoxes: on arbitrary bytes, TopLevelBoxes does not panic or
// loop and lists at most 64 boxes of four bytes each; on a file built from
// the input as well-formed boxes (32- and 64-bit sizes), it lists exactly
// their types.
func FuzzTopLevelBoxes(f *testing.F) {
	f.Add([]byte("ftyp\x04moov\x20mdat\x80free\x00"))
	f.Add([]byte("\x00\x00\x00\x01mdat\xff\xff\xff\xff\xff\xff\xff\xff"))
	f.Add([]byte("\x00\x00\x00\x00moov"))
	f.Add([]byte("\x7f\xff\xff\xffmdat"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := mp4.TopLevelBoxes(bytes.NewReader(data))
		if err == nil {
			if len(got) > 64 {
				t.Fatalf("%d boxes listed, want at most 64", len(got))
			}
			for _, typ := range got {
				if len(typ) != 4 {
					t.Fatalf("box type %q is not four bytes", typ)
				}
			}
		}
		// Read data as a list of (4-byte type, 1-byte size) and build it.
		var file []byte
		var want []string
		for rest := data; len(rest) >= 5 && len(want) < 64; rest = rest[5:] {
			typ, n := string(rest[:4]), int(rest[4]&0x7f)
			file = append(file, box(typ, n, rest[4]&0x80 != 0)...)
			want = append(want, typ)
		}
		got, err = mp4.TopLevelBoxes(bytes.NewReader(file))
		if err != nil {
			t.Fatalf("well-formed boxes %q: %v", want, err)
		}
		if len(want) == 0 {
			want = nil
		}
		require.Equal(t, want, got)
	})
}
