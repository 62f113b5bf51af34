package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backbeat/backbeat/services/api"
)

// Status prints a video's state, progress, timeline and URLs:
// `backbeat status VID [--json]`.
func Status(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "status", "VIDEO_ID [--json]")
	var af apiFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	vid, err := oneArg(fs, args, "video id")
	if err != nil {
		return err
	}
	c, err := af.client(env)
	if err != nil {
		return err
	}
	v, err := c.Video(ctx, vid)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return PrintStatus(env.Stdout, v)
}

// PrintStatus writes the human form of a video's status: a header of
// key/value lines, then the steps timeline as a table.
func PrintStatus(w io.Writer, v api.VideoView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, val string) {
		if val != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, val)
		}
	}
	row("video", v.VideoID)
	row("status", fmt.Sprintf("%s (%s)", v.Status, StageName(v)))
	if v.RunID != "" {
		run := v.RunID
		if v.Attempt > 0 {
			run += fmt.Sprintf(", attempt %d", v.Attempt)
		}
		if v.Pool != "" {
			run += " on " + v.Pool
		}
		row("run", run)
	}
	if !v.Terminal() {
		row("progress", strings.TrimSpace(strings.TrimPrefix(ProgressLine(v), StageName(v))))
	}
	row("reason", v.Reason)
	row("video url", v.VideoURL)
	row("thumbnail", v.ThumbnailURL)
	row("square", v.SquareThumbnailURL)
	row("mp3", v.MP3URL)
	if v.RenderSeconds > 0 {
		row("render time", fmt.Sprintf("%.1fs", v.RenderSeconds))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	if len(v.Steps) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tATTEMPT\tPOOL\tSTARTED\tTOOK\tRESULT")
	for _, s := range v.Steps {
		took := "running"
		if s.EndedAt != nil {
			took = s.EndedAt.Sub(s.StartedAt).Round(100 * time.Millisecond).String()
		}
		result := s.Output
		if s.Error != "" {
			result = "error: " + s.Error
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", s.Name, s.Attempt, dash(s.Pool),
			s.StartedAt.Local().Format("2006-01-02 15:04:05"), took, oneLine(result))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table row on one line and of bounded width.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}
