package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
)

// Upload kinds.
const (
	KindAudio = "audio"
	KindCover = "cover"
)

// UploadResponse is POST /v1/uploads: the key to name in the create.
type UploadResponse struct {
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type"`
}

// UploadKey is where an upload of a kind and extension is stored.
func UploadKey(videoID, kind, ext string) string {
	return keys.UploadPrefix(videoID) + kind + "." + ext
}

// sniffAudio names the container of an audio file from its first bytes, or
// returns "" for anything that is obviously not audio. It is a cheap early
// refusal; the audio service still probes the file for real.
func sniffAudio(head []byte) (ext, contentType string) {
	switch {
	case bytes.HasPrefix(head, []byte("ID3")):
		return "mp3", "audio/mpeg"
	case bytes.HasPrefix(head, []byte("fLaC")):
		return "flac", "audio/flac"
	case bytes.HasPrefix(head, []byte("OggS")):
		return "ogg", "audio/ogg"
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WAVE":
		return "wav", "audio/wav"
	case len(head) >= 12 && string(head[:4]) == "FORM" && (string(head[8:12]) == "AIFF" || string(head[8:12]) == "AIFC"):
		return "aiff", "audio/aiff"
	case len(head) >= 8 && string(head[4:8]) == "ftyp":
		return "m4a", "audio/mp4"
	case len(head) >= 2 && head[0] == 0xFF && head[1]&0xE0 == 0xE0:
		// MPEG frame sync: layer bits 00 are ADTS AAC, anything else MPEG audio.
		if head[1]&0x06 == 0 {
			return "aac", "audio/aac"
		}
		return "mp3", "audio/mpeg"
	}
	return "", ""
}

// sniffImage accepts the cover formats the renderer decodes.
func sniffImage(head []byte) (ext, contentType string) {
	switch ct := http.DetectContentType(head); ct {
	case "image/jpeg":
		return "jpg", ct
	case "image/png":
		return "png", ct
	case "image/webp":
		return "webp", ct
	}
	return "", ""
}

// errTooLarge is returned by limitedReader past its limit.
var errTooLarge = errors.New("upload too large")

// limitedReader fails once more than n bytes have been read, and remembers
// it, so a too-large body is a 413 whatever the store wraps the error in.
type limitedReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		l.exceeded = true
		return n, errTooLarge
	}
	return n, err
}

// uploadRequest is what the query of POST /v1/uploads asks for.
type uploadRequest struct {
	vid, kind string
	// limit is the most bytes the body may have.
	limit int64
	// sniff names the body's format from its first bytes ("" if refused).
	sniff func(head []byte) (ext, contentType string)
}

// parseUpload reads the query (video_id, kind) and the declared length of an
// upload, everything the handler decides before it reads the body or asks
// the database: a bad id or kind is a 400, a declared length over the kind's
// limit a 413 (contentLength -1, unknown, is checked while reading).
func parseUpload(cfg Config, q url.Values, contentLength int64) (uploadRequest, error) {
	up := uploadRequest{vid: q.Get("video_id"), kind: q.Get("kind"), limit: cfg.MaxAudioBytes, sniff: sniffAudio}
	if err := ids.ValidateVideoID(up.vid); err != nil {
		return uploadRequest{}, badRequest("%v", err)
	}
	switch up.kind {
	case KindAudio:
	case KindCover:
		up.limit, up.sniff = cfg.MaxCoverBytes, sniffImage
	default:
		return uploadRequest{}, badRequest("kind must be %q or %q, not %q", KindAudio, KindCover, up.kind)
	}
	if contentLength > up.limit {
		return uploadRequest{}, errorf(http.StatusRequestEntityTooLarge, "%s upload of %d bytes is over the limit of %d", up.kind, contentLength, up.limit)
	}
	return up, nil
}

// upload stores the raw request body as the audio or cover of a video. The
// body is spooled to disk first (spoolUpload: memory per upload stays small
// whatever its size or framing) under a pace (paceReader: a slow client is
// cut off), and only the video's owner may upload under its id (claimVideo).
func (s *Service) upload(w http.ResponseWriter, r *http.Request, c caller) error {
	if c.Admin {
		return errorf(http.StatusForbidden, "uploads belong to users: send them with the user's API key")
	}
	up, err := parseUpload(s.cfg, r.URL.Query(), r.ContentLength)
	if err != nil {
		return err
	}
	vid, kind, limit, sniff := up.vid, up.kind, up.limit, up.sniff
	ctx := r.Context()
	// Refuse someone else's video before reading a byte of the body; the
	// claim itself waits until the body is known to be an upload.
	if err := s.checkOwner(r, c, vid); err != nil {
		return err
	}
	pace := newPaceReader(w, r.Body, s.cfg.UploadGrace, s.cfg.UploadMinRate)
	body := &limitedReader{r: pace, n: limit}
	readErr := func(err error) error {
		var pe *os.PathError
		switch {
		case body.exceeded:
			return errorf(http.StatusRequestEntityTooLarge, "%s upload is over the limit of %d bytes", kind, limit)
		case pace.slow:
			return errorf(http.StatusRequestTimeout, "%s upload too slow: send at least %d bytes/s, with no pause over %s",
				kind, s.cfg.UploadMinRate, s.cfg.UploadGrace)
		case errors.As(err, &pe):
			return fmt.Errorf("spool %s upload: %w", kind, err)
		}
		return badRequest("read upload: %v", err)
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(body, head)
	switch {
	case errors.Is(err, io.EOF):
		return badRequest("empty upload: send the file as the request body")
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF):
		return readErr(err)
	}
	head = head[:n]
	ext, ct := sniff(head)
	if ext == "" {
		return badRequest("the %s upload is not a supported format (looks like %s)", kind,
			strings.SplitN(http.DetectContentType(head), ";", 2)[0])
	}
	f, size, err := spoolUpload(s.cfg.SpoolDir, head, body)
	if err != nil {
		return readErr(err)
	}
	defer f.Close()
	if err := s.claimVideo(ctx, c, vid); err != nil {
		return err
	}
	key := UploadKey(vid, kind, ext)
	info, err := s.blob.Put(ctx, key, f, size, ct)
	if err != nil {
		return fmt.Errorf("store upload %s: %w", key, err)
	}
	writeJSON(w, http.StatusCreated, UploadResponse{Key: key, Size: info.Size, ContentType: ct})
	return nil
}
