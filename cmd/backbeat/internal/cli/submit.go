package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/backbeat/backbeat/pkg/ids"
	"github.com/backbeat/backbeat/services/api"
)

// settingsFlag collects repeated --set key=value template settings.
type settingsFlag map[string]string

func (s settingsFlag) String() string { return fmt.Sprint(map[string]string(s)) }

func (s settingsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, not %q", v)
	}
	s[k] = val
	return nil
}

// Submit uploads a track (and a cover), asks for a video and optionally
// waits for it: `backbeat submit song.mp3 --start 30 --end 60 --wait`.
func Submit(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "submit", "FILE|https://URL --start S --end S [flags]")
	var af apiFlags
	af.register(fs)
	req := api.CreateRequest{TemplateSettings: map[string]string{}}
	fs.Float64Var(&req.StartSeconds, "start", 0, "start of the region, in seconds")
	fs.Float64Var(&req.EndSeconds, "end", 0, "end of the region, in seconds (required)")
	fs.StringVar(&req.Template, "template", "spectrum", "visual template")
	fs.StringVar(&req.Format, "format", "square", "square, portrait or landscape")
	fs.StringVar(&req.Title, "title", "", "title drawn on the video")
	fs.StringVar(&req.Artist, "artist", "", "artist drawn on the video")
	fs.BoolVar(&req.HDR, "hdr", false, "10-bit HDR output (if the bundle allows)")
	fs.StringVar(&req.VideoID, "video-id", "", "video id (default: a new random id)")
	fs.StringVar(&req.RequestID, "request-id", "", "idempotency key (default: chosen by the API)")
	fs.Var(settingsFlag(req.TemplateSettings), "set", "template setting key=value (repeatable)")
	cover := fs.String("cover", "", "cover image (JPEG, PNG or WebP)")
	waitDone := fs.Bool("wait", false, "show progress until the video is done, then print its URLs")
	thumbs := fs.Duration("thumbnail-wait", DefaultThumbnailWait, "with --wait: after ready, how long to wait for thumbnails")
	src, err := oneArg(fs, args, "audio file or https URL")
	if err != nil {
		return err
	}
	if req.EndSeconds <= req.StartSeconds {
		return usageError("--end (%g) must be after --start (%g)", req.EndSeconds, req.StartSeconds)
	}
	if req.VideoID == "" {
		req.VideoID = newVideoID()
	}
	if err := ids.ValidateVideoID(req.VideoID); err != nil {
		return usageError("%v", err)
	}
	c, err := af.client(env)
	if err != nil {
		return err
	}
	if strings.HasPrefix(src, "https://") {
		req.AudioURL = src
	} else {
		up, err := c.Upload(ctx, req.VideoID, api.KindAudio, src)
		if err != nil {
			return err
		}
		req.AudioKey = up.Key
		fmt.Fprintf(env.Stderr, "uploaded %s (%d bytes)\n", up.Key, up.Size)
	}
	if *cover != "" {
		up, err := c.Upload(ctx, req.VideoID, api.KindCover, *cover)
		if err != nil {
			return err
		}
		req.CoverKey = up.Key
		fmt.Fprintf(env.Stderr, "uploaded %s (%d bytes)\n", up.Key, up.Size)
	}
	acc, err := c.CreateVideo(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "submitted video %s (request %s)\n", acc.VideoID, acc.RequestID)
	if !*waitDone {
		fmt.Fprintln(env.Stdout, acc.VideoID)
		return nil
	}
	return wait(ctx, env, c, acc.VideoID, *thumbs)
}

// newVideoID is a random id that passes ids.ValidateVideoID.
func newVideoID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "v" + hex.EncodeToString(b[:])
}
