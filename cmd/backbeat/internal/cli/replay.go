package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
)

// HeaderReplayOf marks a republished event with the stream sequence of the original.
const HeaderReplayOf = bus.HeaderReplayOf

// Replay republishes a video's EVENTS history, oldest first, so operators can
// see the pipeline handle it idempotently (no second run, no balance change):
// `backbeat replay --video V [--dry-run] [--all]`.
//
// The original Nats-Msg-Id is dropped: otherwise the stream's duplicate
// window would swallow the replay and the consumers would never see it.
// video.status announcements are skipped unless --all, since they are the
// coordinator's output, not its input.
func Replay(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "replay", "--video VIDEO_ID [--dry-run] [--all]")
	var nf natsFlags
	nf.register(fs)
	vid := fs.String("video", "", "video whose history to replay (required)")
	dry := fs.Bool("dry-run", false, "print the events instead of publishing them")
	all := fs.Bool("all", false, "also replay video.status announcements")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("unexpected arguments %q", pos)
	}
	if err := ids.ValidateVideoID(*vid); err != nil {
		return usageError("--video: %v", err)
	}
	nc, js, subj, err := nf.connect(env)
	if err != nil {
		return err
	}
	defer nc.Close()
	prefix := subj.Event(*vid, "")
	msgs, err := readEvents(ctx, js, prefix+">")
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		fmt.Fprintf(env.Stderr, "no events for video %s\n", *vid)
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tACTION\tEVENT")
	replayed, skipped := 0, 0
	for _, m := range msgs {
		seq, at := seqTime(m)
		kind := strings.TrimPrefix(m.Subject(), prefix)
		action := "replayed"
		switch {
		case kind == bus.KindVideoStatus && !*all:
			action = "skipped"
			skipped++
		case *dry:
			action = "would replay"
		default:
			if err := republish(ctx, js, m, seq); err != nil {
				_ = tw.Flush()
				return err
			}
			replayed++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", seq, at.Local().Format("2006-01-02 15:04:05"), kind, action, describe(m))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write events: %w", err)
	}
	if *dry {
		fmt.Fprintf(env.Stderr, "dry run: %d events of %s, nothing published\n", len(msgs), *vid)
	} else {
		fmt.Fprintf(env.Stderr, "replayed %d events of %s (%d skipped)\n", replayed, *vid, skipped)
	}
	return nil
}

// republish sends a stored event again with its headers, minus its message id.
func republish(ctx context.Context, js jetstream.JetStream, m jetstream.Msg, seq uint64) error {
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
	if _, err := js.PublishMsg(ctx, out); err != nil {
		return fmt.Errorf("republish %s (seq %d): %w", m.Subject(), seq, err)
	}
	return nil
}
