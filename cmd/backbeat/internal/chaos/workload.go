package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/cli"
	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/services/api"
)

// user is one API user of the run.
type user struct {
	ID      string
	Bundle  string
	Initial int64
	client  *cli.Client
}

// video is one submitted video and what the run saw of it.
type video struct {
	ID      string
	User    *user
	Phase   string
	Created time.Time // the POST /v1/videos answer
	Ready   time.Time // the first GET showing status ready
	Final   store.Status
	Reason  string
	Err     error
}

// latency is create→ready, or 0 when it never became ready.
func (v *video) latency() time.Duration {
	if v.Ready.IsZero() || v.Created.IsZero() {
		return 0
	}
	return v.Ready.Sub(v.Created)
}

// createUser makes a user with the api's admin endpoint and returns it with
// a client holding its new key.
func createUser(ctx context.Context, apiURL, adminKey, id, bundle string, balance int64) (*user, error) {
	body, err := json.Marshal(api.CreateUserRequest{ID: id, Balance: balance, Bundle: bundle})
	if err != nil {
		return nil, fmt.Errorf("encode user %s: %w", id, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/v1/admin/users", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("create user %s: %w", id, err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("create user %s: %w", id, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("create user %s: HTTP %d: %s", id, resp.StatusCode, data)
	}
	var out struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.APIKey == "" {
		return nil, fmt.Errorf("create user %s: no api_key in %s", id, data)
	}
	return &user{ID: id, Bundle: bundle, Initial: balance,
		client: &cli.Client{BaseURL: apiURL, Key: out.APIKey, HTTP: &http.Client{Timeout: 10 * time.Second}}}, nil
}

// balance is the user's balance as GET /v1/me answers it.
func (u *user) balance(ctx context.Context) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.client.BaseURL+"/v1/me", nil)
	if err != nil {
		return 0, fmt.Errorf("me %s: %w", u.ID, err)
	}
	req.Header.Set("Authorization", "Bearer "+u.client.Key)
	resp, err := u.client.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("me %s: %w", u.ID, err)
	}
	defer resp.Body.Close()
	var me api.MeResponse
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("me %s: HTTP %d", u.ID, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil {
		return 0, fmt.Errorf("me %s: decode: %w", u.ID, err)
	}
	return me.Balance, nil
}

// workload submits videos and follows each until it is ready.
type workload struct {
	song          string
	start, end    float64
	poll          time.Duration
	readyTimeout  time.Duration
	mu            sync.Mutex
	videos        []*video
	seq           int
	retryDeadline time.Duration
}

// submit uploads the song for a new video of u and asks for it, retrying
// while the API is unavailable (a fault may be in progress); Created is the
// time the POST /v1/videos answer arrived. The returned channel closes when
// the video is ready or has failed.
func (w *workload) submit(ctx context.Context, u *user, phase string) (*video, <-chan struct{}) {
	w.mu.Lock()
	w.seq++
	v := &video{ID: fmt.Sprintf("chaos-%s-%02d", phase, w.seq), User: u, Phase: phase}
	w.videos = append(w.videos, v)
	w.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.create(ctx, v); err != nil {
			v.Err = err
			return
		}
		w.follow(ctx, v)
	}()
	return v, done
}

func (w *workload) create(ctx context.Context, v *video) error {
	deadline := time.Now().Add(w.retryDeadline)
	var key string
	for {
		up, err := v.User.client.Upload(ctx, v.ID, api.KindAudio, w.song)
		if err == nil {
			key = up.Key
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("upload: %w", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	req := api.CreateRequest{VideoID: v.ID, AudioKey: key, StartSeconds: w.start, EndSeconds: w.end,
		Template: "spectrum", Format: "square", Title: "Chaos", Artist: v.Phase,
		// One request id for every try: a retried POST is the same request.
		RequestID: "req-" + v.ID}
	for {
		_, err := v.User.client.CreateVideo(ctx, req)
		if err == nil {
			v.Created = time.Now()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// follow polls GET /v1/videos/<id> every w.poll until the status is ready,
// error or cancelled, or the ready timeout passes.
func (w *workload) follow(ctx context.Context, v *video) {
	deadline := v.Created.Add(w.readyTimeout)
	var last api.VideoView
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		view, err := v.User.client.Video(ctx, v.ID)
		if err == nil {
			last, lastErr = view, nil
			switch view.Status {
			case store.StatusReady:
				v.Ready = time.Now()
				v.Final = view.Status
				return
			case store.StatusError, store.StatusCancelled:
				v.Final, v.Reason = view.Status, view.Reason
				return
			}
		} else {
			lastErr = err
		}
		time.Sleep(w.poll)
	}
	v.Final, v.Reason = last.Status, last.Reason
	if ctx.Err() != nil {
		v.Err = fmt.Errorf("interrupted while %q, stage %q", last.Status, last.Stage)
		return
	}
	v.Err = fmt.Errorf("not ready within %s of its creation (last status %q, stage %q, last error %v)",
		w.readyTimeout, last.Status, last.Stage, lastErr)
}

// inPhase returns the videos of one phase.
func (w *workload) inPhase(phase string) []*video {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*video
	for _, v := range w.videos {
		if v.Phase == phase {
			out = append(out, v)
		}
	}
	return out
}

// percentile is the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(s) {
		rank = len(s) - 1
	}
	return s[rank]
}

// webhookSink is the coordinator's notify webhook: it answers 200 to every
// POST and counts deliveries per video and per (video, run).
type webhookSink struct {
	mu     sync.Mutex
	perVid map[string]int
	perRun map[string]int
	status map[string]string
	total  int
	ln     net.Listener
	srv    *http.Server
}

func startSink() (*webhookSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook sink: %w", err)
	}
	s := &webhookSink{perVid: map[string]int{}, perRun: map[string]int{}, status: map[string]string{}, ln: ln}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *webhookSink) url() string { return "http://" + s.ln.Addr().String() + "/notify" }

func (s *webhookSink) serve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		VideoID string `json:"videoId"`
		RunID   string `json:"runId"`
		Status  string `json:"status"`
	}
	data, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = json.Unmarshal(data, &body)
	s.mu.Lock()
	s.total++
	s.perVid[body.VideoID]++
	s.perRun[body.VideoID+"/"+body.RunID]++
	s.status[body.VideoID] = body.Status
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// counts returns a copy of the per-video counts and the total.
func (s *webhookSink) counts() (perVid map[string]int, perRun map[string]int, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	perVid, perRun = map[string]int{}, map[string]int{}
	for k, v := range s.perVid {
		perVid[k] = v
	}
	for k, v := range s.perRun {
		perRun[k] = v
	}
	return perVid, perRun, s.total
}

func (s *webhookSink) close() { _ = s.srv.Close() }
