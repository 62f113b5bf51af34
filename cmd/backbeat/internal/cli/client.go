package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/backbeat/backbeat/services/api"
)

// Client calls the Backbeat HTTP API with one API key.
type Client struct {
	BaseURL string
	Key     string
	HTTP    *http.Client
}

// APIError is a non-2xx answer, with the server's message.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, size int64, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	if body != nil && size < 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = strings.TrimSpace(string(data))
			if eb.Error == "" {
				eb.Error = http.StatusText(resp.StatusCode)
			}
		}
		return &APIError{Status: resp.StatusCode, Message: eb.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	return c.do(ctx, method, path, body, -1, out)
}

// Upload sends a local file as the audio or cover of a video.
func (c *Client) Upload(ctx context.Context, videoID, kind, path string) (api.UploadResponse, error) {
	var out api.UploadResponse
	f, err := os.Open(path)
	if err != nil {
		return out, fmt.Errorf("upload %s: %w", kind, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return out, fmt.Errorf("upload %s: %w", kind, err)
	}
	q := url.Values{"video_id": {videoID}, "kind": {kind}}
	if err := c.do(ctx, http.MethodPost, "/v1/uploads?"+q.Encode(), f, fi.Size(), &out); err != nil {
		return out, fmt.Errorf("upload %s %s: %w", kind, path, err)
	}
	return out, nil
}

// CreateVideo asks for a video; the answer only means the request is queued.
func (c *Client) CreateVideo(ctx context.Context, req api.CreateRequest) (api.AcceptedResponse, error) {
	var out api.AcceptedResponse
	if err := c.doJSON(ctx, http.MethodPost, "/v1/videos", req, &out); err != nil {
		return out, fmt.Errorf("create video %s: %w", req.VideoID, err)
	}
	return out, nil
}

// Video returns the status, timeline and progress of a video.
func (c *Client) Video(ctx context.Context, id string) (api.VideoView, error) {
	var out api.VideoView
	if err := c.doJSON(ctx, http.MethodGet, "/v1/videos/"+url.PathEscape(id), nil, &out); err != nil {
		return out, fmt.Errorf("video %s: %w", id, err)
	}
	return out, nil
}

// Cancel asks for the current run of a video to stop.
func (c *Client) Cancel(ctx context.Context, id, reason string) (api.AcceptedResponse, error) {
	var out api.AcceptedResponse
	err := c.doJSON(ctx, http.MethodPost, "/v1/videos/"+url.PathEscape(id)+"/cancel", api.ActionRequest{Reason: reason}, &out)
	if err != nil {
		return out, fmt.Errorf("cancel %s: %w", id, err)
	}
	return out, nil
}

// Recover requeues a stalled render (a user's own, in `backbeat dev`).
func (c *Client) Recover(ctx context.Context, id string) (api.AcceptedResponse, error) {
	var out api.AcceptedResponse
	if err := c.doJSON(ctx, http.MethodPost, "/v1/videos/"+url.PathEscape(id)+"/recover", api.ActionRequest{}, &out); err != nil {
		return out, fmt.Errorf("recover %s: %w", id, err)
	}
	return out, nil
}

// Act takes an operator action (admin key): POST /v1/admin/actions.
func (c *Client) Act(ctx context.Context, req api.AdminRequest) (api.ActionResult, error) {
	var out api.ActionResult
	if err := c.doJSON(ctx, http.MethodPost, "/v1/admin/actions", req, &out); err != nil {
		return out, fmt.Errorf("%s: %w", req.Action, err)
	}
	return out, nil
}

// Failures reads the failed steps grouped by reason (admin key).
func (c *Client) Failures(ctx context.Context, since string, video string) (api.FailuresResponse, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if video != "" {
		q.Set("video", video)
	}
	var out api.FailuresResponse
	if err := c.doJSON(ctx, http.MethodGet, "/v1/admin/failures?"+q.Encode(), nil, &out); err != nil {
		return out, fmt.Errorf("failures: %w", err)
	}
	return out, nil
}
