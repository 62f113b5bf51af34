package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/devstack"
	"github.com/backbeat/backbeat/pkg/logging"
	"github.com/backbeat/backbeat/pkg/media"
)

// Demo is what `make run` runs: it starts the dev stack, submits a song with
// a progress bar, checks with ffprobe that the MP4 on the edge is H.264 + AAC,
// prints the URLs and keeps serving them until Ctrl-C (or exits with --exit).
func Demo(ctx context.Context, env Env, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	opts := devstack.Flags(fs)
	exit := fs.Bool("exit", false, "stop after the check instead of serving the URLs")
	template := fs.String("template", "spectrum", "visual template")
	format := fs.String("format", "square", "square, portrait or landscape")
	start := fs.Float64("start", 8, "region start (s)")
	end := fs.Float64("end", 23, "region end (s)")
	song, err := oneArg(fs, args, "audio file")
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	logPath := filepath.Join(opts.Dir, "backbeat.log")
	if opts.Log, err = logging.NewRoot("info", logPath); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "starting the dev stack (logs: %s)…\n", logPath)
	st, err := devstack.Start(ctx, *opts)
	if err != nil {
		return fmt.Errorf("start dev stack: %w", err)
	}
	defer st.Stop()
	devstack.PrintBanner(env.Stderr, st)

	denv := env
	denv.Getenv = func(k string) string {
		switch k {
		case "BACKBEAT_API_URL":
			return st.BaseURL
		case "BACKBEAT_API_KEY":
			return st.APIKey
		}
		return env.Getenv(k)
	}
	vid := fmt.Sprintf("demo-%d", time.Now().Unix())
	err = Submit(ctx, denv, []string{song, "--start", fmt.Sprint(*start), "--end", fmt.Sprint(*end),
		"--template", *template, "--format", *format, "--title", "Backbeat Demo", "--artist", "The Generators",
		"--video-id", vid, "--wait"})
	if err != nil {
		return err
	}
	// The video's URL names its run: it is public only once the run is ready.
	c := &Client{BaseURL: st.BaseURL, Key: st.APIKey, HTTP: env.HTTP}
	v, err := c.Video(ctx, vid)
	if err != nil {
		return fmt.Errorf("read the demo video: %w", err)
	}
	if err := verifyVideo(ctx, v.VideoURL, *end-*start); err != nil {
		return err
	}
	if *exit {
		return nil
	}
	fmt.Fprintf(env.Stderr, "\nServing until Ctrl-C. Open %s in a browser.\n", v.VideoURL)
	<-ctx.Done()
	return nil
}

// verifyVideo downloads the MP4 from the edge and checks what a player needs.
func verifyVideo(ctx context.Context, url string, want float64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	f, err := os.CreateTemp("", "backbeat-demo-*.mp4")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("download %s: %w", url, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	p, err := media.Probe(ctx, f.Name())
	if err != nil {
		return err
	}
	v, a := p.Video(), p.Audio()
	if v == nil || a == nil || v.CodecName != "h264" || a.CodecName != "aac" {
		return fmt.Errorf("demo video is not H.264 + AAC: %+v", p.Streams)
	}
	if err := media.CheckPlayable(ctx, f.Name()); err != nil {
		return fmt.Errorf("demo video does not play: %w", err)
	}
	fmt.Printf("verified with ffprobe and a full decode (+faststart): %s %dx%d %s + %s %d Hz, %.2f s (region %.2f s)\n",
		v.CodecName, v.Width, v.Height, v.PixFmt, a.CodecName, a.SampleRate, p.Duration, want)
	return nil
}
