// Package alert tells operators that something needs a human: a run that
// failed for good, a stalled render, a purge or thumbnail that did not happen.
// Alerts go to the log and, when configured, to a chat webhook (Slack,
// Discord and Telegram-bridge style JSON); they never block the flow.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/backbeat/backbeat/pkg/logging"
)

// Alert is one message for operators.
type Alert struct {
	// Kind is a stable machine-readable name: run_failed, run_stalled, step_failed.
	Kind    string `json:"kind"`
	VideoID string `json:"video_id,omitempty"`
	RunID   string `json:"run_id,omitempty"`
	Step    string `json:"step,omitempty"`
	Reason  string `json:"reason"`
	// TraceID is the trace of the request, message or watchdog pass that
	// raised the alert (logging.TraceID), so an operator can open it.
	TraceID string `json:"trace_id,omitempty"`
	// Text is the human line, also sent as "text" and "content" so Slack and
	// Discord webhooks show it as is.
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// Sender delivers alerts asynchronously through a bounded queue; when the
// queue is full the alert is logged and dropped rather than block a handler.
type Sender struct {
	url    string
	client *http.Client
	log    *zap.Logger
	queue  chan Alert
	wg     sync.WaitGroup
	once   sync.Once
}

// New starts a sender; url may be empty (log only).
func New(url string, log *zap.Logger) *Sender {
	s := &Sender{url: url, client: &http.Client{Timeout: 10 * time.Second}, log: log, queue: make(chan Alert, 256)}
	s.wg.Add(1)
	go s.loop()
	return s
}

// Send queues an alert and returns at once.
func (s *Sender) Send(a Alert) {
	if a.At.IsZero() {
		a.At = time.Now().UTC()
	}
	if a.Text == "" {
		a.Text = fmt.Sprintf("[backbeat] %s video=%s run=%s step=%s: %s", a.Kind, a.VideoID, a.RunID, a.Step, a.Reason)
	}
	log := s.log
	if a.TraceID != "" {
		log = log.With(zap.String(logging.KeyTraceID, a.TraceID))
	}
	log.Warn("alert", zap.String("kind", a.Kind), zap.String("video_id", a.VideoID), zap.String("run_id", a.RunID),
		zap.String("step", a.Step), zap.String("reason", a.Reason))
	select {
	case s.queue <- a:
	default:
		log.Error("alert queue full; alert dropped", zap.String("kind", a.Kind), zap.String("video_id", a.VideoID))
	}
}

// Close drains the queue (bounded by each request's timeout) and stops.
func (s *Sender) Close() {
	s.once.Do(func() { close(s.queue) })
	s.wg.Wait()
}

func (s *Sender) loop() {
	defer s.wg.Done()
	for a := range s.queue {
		if s.url == "" {
			continue
		}
		if err := s.post(a); err != nil {
			s.log.Warn("alert webhook failed", zap.Error(err), zap.String("kind", a.Kind), zap.String("video_id", a.VideoID),
				zap.String(logging.KeyTraceID, a.TraceID))
		}
	}
}

func (s *Sender) post(a Alert) error {
	body, err := json.Marshal(struct {
		Alert
		Content string `json:"content"`
	}{a, a.Text})
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("post alert: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("alert webhook answered %s", resp.Status)
	}
	return nil
}
