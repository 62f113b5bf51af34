package blob

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/backbeat/backbeat/pkg/redact"
)

// Open picks a Store from one configuration string, so every service and the
// CLI take a single BLOB_URL setting:
//
//	/var/lib/backbeat/blob  or  file:///var/lib/backbeat/blob    → Local
//	s3://ACCESS:SECRET@host:port/bucket?secure=false&region=r    → MinIO
//
// For s3:// URLs secure defaults to true; percent-encode special characters
// in the credentials. Errors never echo the secret.
func Open(ctx context.Context, rawURL string) (Store, error) {
	if rawURL == "" {
		return nil, errors.New("blob: open: empty store URL")
	}
	if !strings.Contains(rawURL, "://") {
		return NewLocal(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("blob: open: parse store URL: %w", redact.Error(err))
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("blob: open %s: file URLs must be file:///absolute/path", u.Redacted())
		}
		if u.Path == "" {
			return nil, fmt.Errorf("blob: open %s: empty path", u.Redacted())
		}
		return NewLocal(u.Path)
	case "s3":
		cfg, err := minioConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		return NewMinIO(ctx, cfg)
	default:
		return nil, fmt.Errorf("blob: open %s: unsupported scheme %q (want file or s3)", u.Redacted(), u.Scheme)
	}
}

// minioConfigFromURL reads s3://ACCESS:SECRET@host:port/bucket?secure=&region=.
func minioConfigFromURL(u *url.URL) (MinIOConfig, error) {
	cfg := MinIOConfig{Endpoint: u.Host, Secure: true}
	if u.User != nil {
		cfg.AccessKey = u.User.Username()
		cfg.SecretKey, _ = u.User.Password()
	}
	cfg.Bucket = strings.Trim(u.Path, "/")
	if cfg.Bucket == "" || strings.Contains(cfg.Bucket, "/") {
		return MinIOConfig{}, fmt.Errorf("blob: open %s: want exactly one bucket in the path", u.Redacted())
	}
	q := u.Query()
	if s := q.Get("secure"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return MinIOConfig{}, fmt.Errorf("blob: open %s: secure=%q: %w", u.Redacted(), s, err)
		}
		cfg.Secure = b
	}
	cfg.Region = q.Get("region")
	return cfg, nil
}
