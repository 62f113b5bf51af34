package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/ids"
	backbeatv1 "github.com/backbeat/backbeat/proto/backbeat/v1"
)

// DLQ lists steps that failed for good (permanent errors, exhausted
// deliveries, undecodable messages) from the step.failed events, newest
// last: `backbeat dlq [--video V] [--limit N] [--json]`.
func DLQ(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "dlq", "[--video VIDEO_ID] [--limit N] [--json]")
	var nf natsFlags
	nf.register(fs)
	vid := fs.String("video", "", "only this video's failures")
	limit := fs.Int("limit", 50, "show the last N failures (0: all)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("unexpected arguments %q", pos)
	}
	if *vid != "" {
		if err := ids.ValidateVideoID(*vid); err != nil {
			return usageError("--video: %v", err)
		}
	}
	nc, js, subj, err := nf.connect(env)
	if err != nil {
		return err
	}
	defer nc.Close()
	filter := subj.EventsOfKind(bus.KindStepFailed)
	if *vid != "" {
		filter = subj.Event(*vid, bus.KindStepFailed)
	}
	msgs, err := readEvents(ctx, js, filter)
	if err != nil {
		return err
	}
	if *limit > 0 && len(msgs) > *limit {
		msgs = msgs[len(msgs)-*limit:]
	}
	if len(msgs) == 0 {
		fmt.Fprintln(env.Stderr, "no failed steps")
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "SEQ\tTIME\tVIDEO\tRUN\tSTEP\tATTEMPT\tKIND\tPOOL\tWORKER\tREASON")
	}
	for _, m := range msgs {
		seq, at := seqTime(m)
		var f backbeatv1.StepFailed
		if err := bus.Decode(m.Data(), m.Headers().Get(bus.HeaderContentType), &f); err != nil {
			fmt.Fprintf(tw, "%d\t%s\t%s\t\t\t\t\t\t\t(undecodable: %v)\n", seq, at.Local().Format("2006-01-02 15:04:05"),
				subj.VideoIDOf(m.Subject()), err)
			continue
		}
		if *asJSON {
			fmt.Fprintf(env.Stdout, "{\"seq\":%d,\"time\":%q,\"event\":%s}\n", seq,
				at.UTC().Format("2006-01-02T15:04:05.000Z"), compactJSON(&f))
			continue
		}
		kind := "retries spent"
		if f.GetPermanent() {
			kind = "permanent"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", seq, at.Local().Format("2006-01-02 15:04:05"),
			f.GetVideoId(), dash(f.GetRunId()), f.GetStep(), f.GetAttempt(), kind, dash(f.GetPool()),
			dash(f.GetWorker()), oneLine(f.GetReason()))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write failures: %w", err)
	}
	return nil
}
