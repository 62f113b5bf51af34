package api

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSniffAudio(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		head []byte
		ext  string
	}{
		{"id3 mp3", []byte("ID3\x04\x00\x00\x00\x00\x00\x00"), "mp3"},
		{"bare mp3 frame", []byte{0xFF, 0xFB, 0x90, 0x64}, "mp3"},
		{"adts aac", []byte{0xFF, 0xF1, 0x50, 0x80}, "aac"},
		{"flac", []byte("fLaC\x00\x00\x00\x22"), "flac"},
		{"ogg", []byte("OggS\x00\x02"), "ogg"},
		{"wav", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), "wav"},
		{"avi is not wav", []byte("RIFF\x24\x00\x00\x00AVI LIST"), ""},
		{"aiff", []byte("FORM\x00\x00\x00\x00AIFFCOMM"), "aiff"},
		{"m4a", []byte("\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00"), "m4a"},
		{"html", []byte("<!DOCTYPE html><html>"), ""},
		{"pdf", []byte("%PDF-1.7\n"), ""},
		{"png", []byte("\x89PNG\r\n\x1a\n"), ""},
		{"short", []byte{0xFF}, ""},
	}
	for _, tc := range cases {
		ext, _ := sniffAudio(tc.head)
		require.Equal(t, tc.ext, ext, tc.name)
	}
}

func TestSniffImage(t *testing.T) {
	t.Parallel()
	ext, ct := sniffImage([]byte("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"))
	require.Equal(t, "jpg", ext)
	require.Equal(t, "image/jpeg", ct)
	ext, _ = sniffImage([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "))
	require.Equal(t, "webp", ext)
	ext, _ = sniffImage([]byte("GIF89a"))
	require.Equal(t, "", ext)
	ext, _ = sniffImage([]byte("ID3\x04"))
	require.Equal(t, "", ext)
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"square", "Portrait", "FORMAT_LANDSCAPE", " landscape "} {
		_, err := ParseFormat(s)
		require.NoError(t, err, s)
	}
	for _, s := range []string{"", "unspecified", "FORMAT_UNSPECIFIED", "round"} {
		_, err := ParseFormat(s)
		require.Error(t, err, s)
	}
}
