package api

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/pkg/keys"
)

// FuzzParseUpload feeds arbitrary query strings and declared lengths to
// parseUpload and arbitrary first bytes to the sniffer it picks. Properties:
// a refusal is a 400 or a 413, never a 5xx; an accepted request names a
// valid video, a known kind, the kind's limit, and a declared length within
// it; every key it can lead to (UploadKey with any extension the sniffer
// names) is a valid upload key of that video and of no other; the sniffer
// names an extension and a content type together or neither.
func FuzzParseUpload(f *testing.F) {
	f.Add("video_id=v1&kind=audio", int64(1000), []byte("ID3\x04\x00\x00\x00\x00\x00\x00"))
	f.Add("video_id=v1&kind=cover", int64(-1), []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))
	f.Add("video_id=v1&kind=cover", int64(DefaultMaxCoverBytes+1), []byte("\xff\xd8\xff\xe0"))
	f.Add("video_id=../v1&kind=audio", int64(0), []byte("RIFF\x00\x00\x00\x00WAVE"))
	f.Add("video_id=v1&video_id=v2&kind=audio&kind=cover", int64(10), []byte("\x00\x00\x00\x20ftypM4A "))
	f.Add("video_id=v%2F1&kind=Audio", int64(10), []byte("fLaC"))
	f.Add("video_id=v1;kind=audio", int64(10), []byte{0xFF, 0xF1, 0x50, 0x80})
	f.Add("%zz", int64(10), []byte("OggS"))
	cfg := Config{MaxAudioBytes: DefaultMaxAudioBytes, MaxCoverBytes: DefaultMaxCoverBytes}
	f.Fuzz(func(t *testing.T, rawQuery string, contentLength int64, head []byte) {
		q, _ := url.ParseQuery(rawQuery) // what r.URL.Query() does: bad pairs are dropped
		up, err := parseUpload(cfg, q, contentLength)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || (he.code != http.StatusBadRequest && he.code != http.StatusRequestEntityTooLarge) {
				t.Fatalf("parseUpload(%q, %d) fails with %v, want a 400 or a 413", rawQuery, contentLength, err)
			}
			return
		}
		if ids.ValidateVideoID(up.vid) != nil || up.vid != q.Get("video_id") {
			t.Fatalf("parseUpload(%q) accepts video %q", rawQuery, up.vid)
		}
		want := map[string]int64{KindAudio: cfg.MaxAudioBytes, KindCover: cfg.MaxCoverBytes}
		if limit, ok := want[up.kind]; !ok || up.limit != limit || contentLength > limit {
			t.Fatalf("parseUpload(%q, %d) accepts kind %q with limit %d", rawQuery, contentLength, up.kind, up.limit)
		}
		ext, ct := up.sniff(head)
		if (ext == "") != (ct == "") {
			t.Fatalf("sniff(%q) = %q, %q: one without the other", head, ext, ct)
		}
		if ext == "" {
			return
		}
		key := UploadKey(up.vid, up.kind, ext)
		if !keys.IsUploadKey(key, up.vid) || keys.IsUploadKey(key, up.vid+"0") {
			t.Fatalf("upload key %q is not a key of video %q alone", key, up.vid)
		}
		if _, _, _, ok := keys.ParsePublicKey(key); ok {
			t.Fatalf("upload key %q is a public key: the edge would serve it", key)
		}
		// The audio sniffer reads at most 12 bytes: more bytes never change it.
		if up.kind == KindAudio && len(head) > 12 {
			if e2, c2 := up.sniff(head[:12]); e2 != ext || c2 != ct {
				t.Fatalf("sniffAudio(%q) = %q but its first 12 bytes give %q", head, ext, e2)
			}
		}
	})
}
