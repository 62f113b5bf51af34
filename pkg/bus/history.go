package bus

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadHistory returns the EVENTS messages matching filter, oldest first,
// through an ordered consumer (ephemeral, no acks, nothing left behind). The
// operator's tools read a video's history with it (`backbeat events`, the
// admin API's replay).
func ReadHistory(ctx context.Context, js jetstream.JetStream, filter string) ([]jetstream.Msg, error) {
	st, err := js.Stream(ctx, StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamEvents, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", StreamEvents, err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		return nil, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", filter, err)
	}
	var out []jetstream.Msg
	// Ask for exactly what is pending, so a fetch returns as soon as it is
	// served instead of waiting out its expiry for a full batch.
	want := total
	for want > 0 {
		batch, err := cons.Fetch(int(min(want, 512)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", filter, err)
		}
		n := len(out)
		for m := range batch.Messages() {
			out = append(out, m)
			if md, err := m.Metadata(); err == nil {
				want = md.NumPending
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("fetch %s: %w", filter, err)
		}
		if len(out) == n {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Republish sends a stored event again with its headers, minus its message
// id (the stream's duplicate window would drop it), plus HeaderReplayOf with
// the original's stream sequence: the coordinator keys creates by it and
// never acts on a replayed command, so a replay moves no run and no credit.
// A non-empty msgID is the replay's own message id, so the same replay sent
// twice within the duplicate window is stored once.
func Republish(ctx context.Context, js jetstream.JetStream, m jetstream.Msg, msgID string) error {
	md, err := m.Metadata()
	if err != nil {
		return fmt.Errorf("republish %s: metadata: %w", m.Subject(), err)
	}
	seq := md.Sequence.Stream
	out := nats.NewMsg(m.Subject())
	out.Data = m.Data()
	for k, vs := range m.Headers() {
		if k == jetstream.MsgIDHeader {
			continue
		}
		for _, v := range vs {
			out.Header.Add(k, v)
		}
	}
	out.Header.Set(HeaderReplayOf, strconv.FormatUint(seq, 10))
	if msgID != "" {
		out.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("republish %s (seq %d): %w", m.Subject(), seq, err)
	}
	return nil
}
