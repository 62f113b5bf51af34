package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/services/api"
)

// Replay re-publishes event histories through the API's admin endpoint, so
// operators can heal effects lost in an outage and see the pipeline handle
// them idempotently (no second run, no balance change):
//
//	backbeat replay --video VIDEO_ID [--dry-run] [--request-id ID]
//	backbeat replay --from T --to T [--status S,S] [--user U] [--template T] [--pool P] [--reason TEXT] [--limit N] [--dry-run]
//
// The action is recorded in the audit trail; the same --request-id again
// does nothing more, so a replay cut short is repeated with the id it printed.
func Replay(ctx context.Context, env Env, args []string) error {
	return bulkAction(ctx, env, "replay", api.ActionReplay, args)
}

// Retry starts a new run of videos whose current run failed (status error),
// from each failed run's request; it holds the credits again (the failed run
// was refunded). One retry per failed run, however often it is asked:
//
//	backbeat retry --video VIDEO_ID [--dry-run]
//	backbeat retry --from T --to T [--reason TEXT] [--user U] … [--dry-run]
func Retry(ctx context.Context, env Env, args []string) error {
	return bulkAction(ctx, env, "retry", api.ActionRetry, args)
}

// Recover requeues stalled runs (each stage's job again; a render as a new
// attempt): one video, or, after an outage, every video with a run in a time
// range (usually --status stalled):
//
//	backbeat recover VIDEO_ID [--dry-run]
//	backbeat recover --from T [--to T] --status stalled [--pool P] … [--dry-run]
func Recover(ctx context.Context, env Env, args []string) error {
	return bulkAction(ctx, env, "recover", api.ActionRecover, args)
}

// bulkAction parses the flags of an action on one video (--video, or the
// one argument) or on a filter, takes it and prints what it did to each
// video.
func bulkAction(ctx context.Context, env Env, name, action string, args []string) error {
	fs := newFlagSet(env, name, "VIDEO_ID | --video VIDEO_ID | --from RFC3339 --to RFC3339 [--status S,S] [--user U] "+
		"[--template T] [--pool P] [--reason TEXT] [--limit N]  [--dry-run] [--request-id ID]")
	var af adminFlags
	af.register(fs)
	vid := fs.String("video", "", "the video to act on")
	from := fs.String("from", "", "bulk: runs created at or after this time (RFC 3339)")
	to := fs.String("to", "", "bulk: runs created before this time (RFC 3339; default now)")
	statuses := fs.String("status", "", "bulk: runs in these statuses, comma-separated")
	user := fs.String("user", "", "bulk: runs of this user")
	template := fs.String("template", "", "bulk: runs of this template")
	pool := fs.String("pool", "", "bulk: runs whose last render attempt was on this pool")
	reason := fs.String("reason", "", "bulk: runs whose reason contains this text")
	limit := fs.Int("limit", 0, "bulk: at most this many videos (default and maximum 1000)")
	dry := fs.Bool("dry-run", false, "say what would happen, change nothing")
	reqID := fs.String("request-id", "", "the action's id; repeating an id does nothing more (default: a new one, printed)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 1 && *vid == "":
		*vid = pos[0] // `backbeat recover VIDEO_ID`
	case len(pos) != 0:
		return usageError("unexpected arguments %q", pos)
	}
	req := api.AdminRequest{Action: action, DryRun: *dry, RequestID: *reqID}
	switch {
	case *vid != "" && *from != "":
		return usageError("give --video or --from/--to, not both")
	case *vid != "":
		if err := ids.ValidateVideoID(*vid); err != nil {
			return usageError("--video: %v", err)
		}
		req.VideoID = *vid
	case *from != "":
		f := &api.BulkFilter{UserID: *user, Template: *template, Pool: *pool, Reason: *reason, Limit: *limit}
		if f.From, err = time.Parse(time.RFC3339, *from); err != nil {
			return usageError("--from: %v", err)
		}
		f.To = time.Now().UTC()
		if *to != "" {
			if f.To, err = time.Parse(time.RFC3339, *to); err != nil {
				return usageError("--to: %v", err)
			}
		}
		if *statuses != "" {
			f.Statuses = strings.Split(*statuses, ",")
		}
		req.Filter = f
	default:
		return usageError("give --video, or a time range with --from (and --to)")
	}
	if req.RequestID == "" && !req.DryRun {
		req.RequestID = api.NewRequestID()
	}
	c, err := af.client(env)
	if err != nil {
		return err
	}
	res, err := c.Act(ctx, req)
	if err != nil {
		return err
	}
	return printAction(env, res)
}

// printAction writes an action's outcome per video, then one summary line.
func printAction(env Env, res api.ActionResult) error {
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VIDEO\tRUN\tSTATUS\tOUTCOME\tDETAIL")
	counts := map[string]int{}
	for _, v := range res.Videos {
		counts[v.Outcome]++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.VideoID, dash(v.RunID), dash(v.Status), v.Outcome, oneLine(v.Detail))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	switch {
	case res.Repeated:
		fmt.Fprintf(env.Stderr, "request %s was taken before: nothing done now; above is what it did\n", res.RequestID)
	case res.DryRun:
		fmt.Fprintf(env.Stderr, "dry run of %s: %d videos would be acted on, %d skipped; nothing changed\n",
			res.Action, counts[api.OutcomeWould], counts[api.OutcomeSkipped])
	default:
		fmt.Fprintf(env.Stderr, "%s: %d videos acted on, %d skipped (request %s: repeat it with --request-id to finish a cut-short run safely)\n",
			res.Action, counts[api.OutcomeDone], counts[api.OutcomeSkipped], res.RequestID)
	}
	return nil
}
