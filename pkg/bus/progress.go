package bus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// ProgressReader reads the last RenderProgress of a video from the PROGRESS
// stream, which keeps exactly one message per video: the API shows it, the
// coordinator's stall watchdog watches its frame count. Safe for concurrent use.
type ProgressReader struct {
	js   jetstream.JetStream
	subj Subjects

	mu     sync.Mutex
	stream jetstream.Stream
}

// NewProgressReader reads progress under the subjects of one prefix.
func NewProgressReader(js jetstream.JetStream, s Subjects) *ProgressReader {
	return &ProgressReader{js: js, subj: s}
}

func (p *ProgressReader) handle(ctx context.Context) (jetstream.Stream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stream != nil {
		return p.stream, nil
	}
	st, err := p.js.Stream(ctx, StreamProgress)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamProgress, err)
	}
	p.stream = st
	return st, nil
}

// Last returns the last progress of a video and when the stream stored it,
// or nil when there is none (or it does not decode).
func (p *ProgressReader) Last(ctx context.Context, videoID string) (*backbeatv1.RenderProgress, time.Time, error) {
	st, err := p.handle(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	raw, err := st.GetLastMsgForSubject(ctx, p.subj.Progress(videoID))
	if IsNotFound(err) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("last progress of %s: %w", videoID, err)
	}
	var m backbeatv1.RenderProgress
	if err := Decode(raw.Data, raw.Header.Get(HeaderContentType), &m); err != nil {
		return nil, time.Time{}, nil
	}
	return &m, raw.Time, nil
}
