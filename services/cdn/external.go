package cdn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// externalPurger asks a third-party CDN (Cloudflare, Bunny, … style) to drop
// URLs: POST {"files": [...]} with a bearer token. Transient failures (network,
// 429, 5xx) are retried a couple of times quickly; anything else is reported.
type externalPurger struct {
	endpoint string
	token    string
	baseURL  string
	client   *http.Client
	timeout  time.Duration
	delays   []time.Duration // one per retry
}

// purgeRequest is the body the external CDN receives.
type purgeRequest struct {
	Files []string `json:"files"`
}

// urls maps object keys to the public URLs the external CDN caches.
func (p *externalPurger) urls(keys []string) []string {
	base := strings.TrimRight(p.baseURL, "/")
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = base + "/" + k
	}
	return out
}

// purge sends one request for all keys, retrying transient failures.
func (p *externalPurger) purge(ctx context.Context, keys []string) error {
	body, err := json.Marshal(purgeRequest{Files: p.urls(keys)})
	if err != nil {
		return fmt.Errorf("encode external purge: %w", err)
	}
	var last error
	for attempt := 0; attempt <= len(p.delays); attempt++ {
		if attempt > 0 {
			t := time.NewTimer(p.delays[attempt-1])
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("external purge: %w (last error: %v)", context.Cause(ctx), last)
			case <-t.C:
			}
		}
		retry, err := p.send(ctx, body)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			break
		}
	}
	return fmt.Errorf("external purge: %w", last)
}

// send makes one attempt; retry says whether another could succeed.
func (p *externalPurger) send(ctx context.Context, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		// Network errors and our per-attempt timeout are worth another try;
		// the job's own context ending is not.
		return ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded), fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	err = fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(snippet)))
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500, err
}
