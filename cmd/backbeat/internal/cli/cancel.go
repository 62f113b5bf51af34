package cli

import (
	"context"
	"fmt"
)

// Cancel stops the current run of a video: `backbeat cancel VID [--reason …]`.
// Credits of a cancelled run are refunded by the coordinator.
func Cancel(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "cancel", "VIDEO_ID [--reason TEXT]")
	var af apiFlags
	af.register(fs)
	reason := fs.String("reason", "", "why (kept on the video)")
	vid, err := oneArg(fs, args, "video id")
	if err != nil {
		return err
	}
	c, err := af.client(env)
	if err != nil {
		return err
	}
	acc, err := c.Cancel(ctx, vid, *reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "cancel of %s requested (request %s)\n", acc.VideoID, acc.RequestID)
	return nil
}
