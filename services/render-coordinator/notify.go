package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/backbeat/backbeat/pkg/bus"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// notifier tells the user's app about a finished video through a webhook (or
// the log when none is configured). It never fails a video: exhausted
// retries become a step failure on the timeline and an alert.
func (s *Service) notifier() *bus.Worker[*backbeatv1.NotifyJob] {
	client := &http.Client{Timeout: 10 * time.Second}
	return &bus.Worker[*backbeatv1.NotifyJob]{
		Step: bus.StepNotify, New: func() *backbeatv1.NotifyJob { return &backbeatv1.NotifyJob{} },
		Pub: s.busPublisher(), Log: s.log, Policy: s.topo.Policy(bus.StepNotify), Name: s.name, Metrics: s.met,
		Handle: func(ctx context.Context, j *backbeatv1.NotifyJob) error {
			channel := "log"
			if s.cfg.NotifyWebhook != "" {
				body, err := protojson.Marshal(j)
				if err != nil {
					return bus.Permanent(fmt.Errorf("encode notification: %w", err))
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.NotifyWebhook, bytes.NewReader(body))
				if err != nil {
					return bus.Permanent(fmt.Errorf("notification request: %w", err))
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					s.met.WebhookDelivered(false)
					return fmt.Errorf("post notification: %w", err)
				}
				_ = resp.Body.Close()
				s.met.WebhookDelivered(resp.StatusCode < 300)
				if resp.StatusCode >= 300 {
					return fmt.Errorf("notification webhook answered %s", resp.Status)
				}
				channel = "webhook"
			}
			bus.Logger(ctx, s.log).Info("user notified", zap.String("channel", channel), zap.String("status", j.Status.String()),
				zap.String("user_id", j.UserId), zap.String("video_url", j.VideoUrl))
			done := &backbeatv1.NotifyDone{VideoId: j.VideoId, RunId: j.RunId, Channel: channel}
			return s.pub.Publish(ctx, s.subj.Event(j.VideoId, bus.KindNotifyDone), done, bus.MsgID(j.RunId, bus.StepNotify, 0, bus.KindNotifyDone))
		},
	}
}
