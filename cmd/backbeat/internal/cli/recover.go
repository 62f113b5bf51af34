package cli

import (
	"context"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/services/api"
)

// Recover requeues a stalled run (its stage's job again; a render as a new
// attempt) through the API's admin endpoint: `backbeat recover VIDEO_ID`.
// It needs the admin key; the action is recorded in the audit trail.
func Recover(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "recover", "[--dry-run] [--request-id ID] VIDEO_ID")
	var af adminFlags
	af.register(fs)
	dry := fs.Bool("dry-run", false, "say what would happen, change nothing")
	reqID := fs.String("request-id", "", "the action's id; repeating an id does nothing more (default: a new one)")
	vid, err := oneArg(fs, args, "video id")
	if err != nil {
		return err
	}
	if err := ids.ValidateVideoID(vid); err != nil {
		return usageError("%v", err)
	}
	req := api.AdminRequest{Action: api.ActionRecover, VideoID: vid, DryRun: *dry, RequestID: *reqID}
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
