package cli

import (
	"context"
	"fmt"
)

// Recover requeues a stalled render as a new attempt: `backbeat recover VID`.
// It needs the admin key (operators only).
func Recover(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "recover", "VIDEO_ID")
	var af apiFlags
	af.register(fs)
	vid, err := oneArg(fs, args, "video id")
	if err != nil {
		return err
	}
	c, err := af.client(env)
	if err != nil {
		return err
	}
	acc, err := c.Recover(ctx, vid)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "recover of %s requested (request %s); follow it with: backbeat watch %s\n",
		acc.VideoID, acc.RequestID, acc.VideoID)
	return nil
}
