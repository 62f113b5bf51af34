package audio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/keys"
	"github.com/backbeat/backbeat/pkg/netguard"
)

// fetchSource brings the job's source into dir and returns its local path,
// so that ffmpeg only ever reads a local file. A source key must lie under
// the video's upload prefix; a source URL must be https on an allow-listed
// host and is downloaded through a dialer that refuses private addresses.
func (s *Service) fetchSource(ctx context.Context, job *backbeatv1.AudioJob, dir string) (string, error) {
	vid := job.GetVideoId()
	switch key, u := job.GetSourceKey(), job.GetSourceUrl(); {
	case key != "":
		if err := keys.ValidKey(key); err != nil {
			return "", bus.Permanent(fmt.Errorf("source key: %w", err))
		}
		if !keys.IsUploadKey(key, vid) {
			return "", bus.Permanentf("source key %q is not an upload of video %s (want %s…)", key, vid, keys.UploadPrefix(vid))
		}
		dst := filepath.Join(dir, "source"+safeExt(key))
		if _, err := s.blob.GetFile(ctx, key, dst); err != nil {
			if errors.Is(err, blob.ErrNotFound) {
				return "", bus.Permanentf("source %s not found: %w", key, err)
			}
			return "", fmt.Errorf("download source %s: %w", key, err)
		}
		return dst, nil
	case u != "":
		return s.download(ctx, u, dir)
	default:
		return "", bus.Permanentf("job has neither source_key nor source_url")
	}
}

// download fetches an https source, at most MaxSourceBytes of it.
func (s *Service) download(ctx context.Context, rawURL, dir string) (string, error) {
	if !strings.HasPrefix(strings.ToLower(rawURL), "https://") {
		return "", bus.Permanentf("source url must be https")
	}
	if err := netguard.CheckInput(rawURL, s.cfg.AllowHosts); err != nil {
		return "", bus.Permanent(fmt.Errorf("source url: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", bus.Permanent(fmt.Errorf("source url: %w", err))
	}
	resp, err := s.http.Do(req)
	if err != nil {
		if errors.Is(err, netguard.ErrInputRefused) || bus.IsPermanent(err) {
			return "", bus.Permanent(fmt.Errorf("fetch source: %w", err))
		}
		return "", fmt.Errorf("fetch source: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return "", fmt.Errorf("fetch source: %s", resp.Status)
	default:
		return "", bus.Permanentf("fetch source: %s", resp.Status)
	}
	if resp.ContentLength > s.cfg.MaxSourceBytes {
		return "", bus.Permanentf("source is %d bytes, more than the %d allowed", resp.ContentLength, s.cfg.MaxSourceBytes)
	}
	dst := filepath.Join(dir, "source"+safeExt(req.URL.Path))
	f, err := os.Create(dst)
	if err != nil {
		return "", fmt.Errorf("create source file: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, s.cfg.MaxSourceBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("fetch source: %w", err)
	}
	if n > s.cfg.MaxSourceBytes {
		return "", bus.Permanentf("source is larger than the %d bytes allowed", s.cfg.MaxSourceBytes)
	}
	return dst, nil
}

// newHTTPClient is the client sources are fetched with: connections only to
// public addresses (checked after DNS, at connect time), redirects re-checked
// against the allow-list and limited to https.
func newHTTPClient(allowHosts []string, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = netguard.PublicDialer(10 * time.Second).DialContext
	tr.Proxy = nil // a proxy would make the address check meaningless
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return bus.Permanentf("too many redirects")
			}
			if req.URL.Scheme != "https" {
				return bus.Permanentf("redirect to non-https %s", req.URL.Redacted())
			}
			if err := netguard.CheckInput(req.URL.String(), allowHosts); err != nil {
				return bus.Permanent(fmt.Errorf("redirect: %w", err))
			}
			return nil
		},
	}
}

// safeExt keeps a short alphanumeric extension as a hint for ffmpeg's probe.
func safeExt(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if len(ext) < 2 || len(ext) > 6 {
		return ""
	}
	for _, c := range ext[1:] {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return ""
		}
	}
	return ext
}
