package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/backbeat/backbeat/pkg/store"
	"github.com/backbeat/backbeat/services/api"
)

// Defaults of the wait: how long a just-created video may be unknown (the
// coordinator has not handled the create yet) and how long to wait for
// thumbnails after the video is ready.
const (
	DefaultAppearTimeout = time.Minute
	DefaultThumbnailWait = 30 * time.Second
)

// Watch follows an existing video until it is done: `backbeat watch VID`.
func Watch(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "watch", "VIDEO_ID [flags]")
	var af apiFlags
	af.register(fs)
	thumbs := fs.Duration("thumbnail-wait", DefaultThumbnailWait, "after ready, how long to wait for thumbnails")
	vid, err := oneArg(fs, args, "video id")
	if err != nil {
		return err
	}
	c, err := af.client(env)
	if err != nil {
		return err
	}
	return wait(ctx, env, c, vid, *thumbs)
}

// wait polls the video every env.Poll, drawing progress on stderr, until it
// reaches a terminal status; then prints the URLs (exit 0) or the reason
// (ExitError 1).
func wait(ctx context.Context, env Env, c *Client, vid string, thumbWait time.Duration) error {
	d := &progressDisplay{env: env}
	defer d.done()
	poll := env.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	start := time.Now()
	var readyAt time.Time
	for {
		v, err := c.Video(ctx, vid)
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound && time.Since(start) < DefaultAppearTimeout:
			// The create is queued; the coordinator has not made the video yet.
			d.show(api.VideoView{VideoID: vid})
		case err != nil:
			return err
		case v.Status == store.StatusReady:
			d.show(v)
			if readyAt.IsZero() {
				readyAt = time.Now()
			}
			if thumbnailsSettled(v) || time.Since(readyAt) >= thumbWait {
				d.done()
				printResult(env, v)
				return nil
			}
		case v.Terminal():
			d.show(v)
			d.done()
			printResult(env, v)
			return ExitError{Code: 1}
		default:
			d.show(v)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", vid, ctx.Err())
		case <-tick.C:
		}
	}
}

// thumbnailsSettled reports whether both thumbnails exist or their step
// failed (thumbnails never fail a ready video, so there is no more to wait for).
func thumbnailsSettled(v api.VideoView) bool {
	if v.ThumbnailURL != "" && v.SquareThumbnailURL != "" {
		return true
	}
	for _, s := range v.Steps {
		if s.Name == "thumbnail" && s.Error != "" {
			return true
		}
	}
	return false
}

// printResult puts the URLs on stdout (so scripts can capture them) or the
// failure on stderr.
func printResult(env Env, v api.VideoView) {
	if v.Status != store.StatusReady {
		reason := v.Reason
		if reason == "" {
			reason = "no reason given"
		}
		fmt.Fprintf(env.Stderr, "video %s %s: %s\n", v.VideoID, v.Status, reason)
		if v.Status == store.StatusStalled {
			fmt.Fprintf(env.Stderr, "an operator can requeue it: backbeat recover %s\n", v.VideoID)
		}
		return
	}
	orNone := func(s string) string {
		if s == "" {
			return "(not available)"
		}
		return s
	}
	fmt.Fprintf(env.Stdout, "video:            %s\n", orNone(v.VideoURL))
	fmt.Fprintf(env.Stdout, "thumbnail:        %s\n", orNone(v.ThumbnailURL))
	fmt.Fprintf(env.Stdout, "square thumbnail: %s\n", orNone(v.SquareThumbnailURL))
	if v.RenderSeconds > 0 {
		fmt.Fprintf(env.Stderr, "rendered in %.1fs\n", v.RenderSeconds)
	}
}
