package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/backbeat/backbeat/pkg/ids"
)

// DLQ lists the steps that failed (permanent errors, retries spent, stalls,
// purge errors), grouped by reason with ids and numbers taken out, the
// largest group first, through the API's admin endpoint:
// `backbeat dlq [--since 168h] [--video V] [--json]`.
func DLQ(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "dlq", "[--since DURATION] [--video VIDEO_ID] [--json]")
	var af adminFlags
	af.register(fs)
	since := fs.Duration("since", 7*24*time.Hour, "failures of this long ago and since")
	vid := fs.String("video", "", "only this video's failures")
	asJSON := fs.Bool("json", false, "the API's answer as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("unexpected arguments %q", pos)
	}
	if *since <= 0 {
		return usageError("--since must be positive")
	}
	if *vid != "" {
		if err := ids.ValidateVideoID(*vid); err != nil {
			return usageError("--video: %v", err)
		}
	}
	c, err := af.client(env)
	if err != nil {
		return err
	}
	res, err := c.Failures(ctx, since.String(), *vid)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write failures: %w", err)
		}
		return nil
	}
	if res.Total == 0 {
		fmt.Fprintf(env.Stderr, "no failed steps since %s\n", res.Since.Local().Format("2006-01-02 15:04"))
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tVIDEOS\tSTEP\tLAST SEEN\tREASON\tLATEST (VIDEO RUN ATTEMPT POOL WORKER)")
	for _, g := range res.Groups {
		f := g.Failures[0]
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s %s %d %s %s\n", g.Count, g.Videos, g.Step,
			g.LastSeen.Local().Format("2006-01-02 15:04:05"), oneLine(g.Reason),
			f.VideoID, f.RunID, f.Attempt, dash(f.Pool), dash(f.Worker))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write failures: %w", err)
	}
	fmt.Fprintf(env.Stderr, "%d failed steps in %d groups since %s\n", res.Total, len(res.Groups),
		res.Since.Local().Format("2006-01-02 15:04"))
	return nil
}
