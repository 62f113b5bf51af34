// Package thumbnail makes the two thumbnails of a ready video: a
// representative frame at the video's own size (thumbnail.jpg) and a
// centre-cropped square (square.jpg) for grids, written under the run's
// private keys (keys.RunKey) for the coordinator to promote. It runs after the
// video is ready, so its failures are recorded on the step and never fail the
// video.
package thumbnail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/backbeat/backbeat/pkg/bus"
	"github.com/backbeat/backbeat/pkg/media"
)

// DefaultFrames is how many consecutive frames ffmpeg's thumbnail filter
// compares to pick the most representative one (3 s at 30 fps). Each is held
// decoded in memory, so it is also the filter's memory bound.
const DefaultFrames = 90

// jpegQuality is ffmpeg's -q:v for MJPEG (2 best … 31 worst).
const jpegQuality = "3"

// Size is the geometry of a generated image.
type Size struct {
	Width, Height int
}

// Result describes the thumbnails Generate wrote.
type Result struct {
	// Video is the size of the source (and of the full thumbnail).
	Video Size
	// Square is the side of the square thumbnail: min(width, height).
	Square int
}

// Generate writes the full-size thumbnail to fullPath and the centre-cropped
// square one to squarePath from the local MP4 at videoPath, decoding the video
// once. A file that is not a decodable video yields a permanent error
// (bus.Permanent): retrying the same bytes cannot help. When ctx ends, ffmpeg
// is killed and the error wraps the context's cause.
func Generate(ctx context.Context, videoPath, fullPath, squarePath string, frames int) (Result, error) {
	if frames < 1 {
		frames = DefaultFrames
	}
	in, err := media.LocalArg(videoPath)
	if err != nil {
		return Result{}, bus.Permanent(err)
	}
	probe, err := media.Probe(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("probe video: %w", err)
		}
		return Result{}, bus.Permanent(fmt.Errorf("probe video: %w", err))
	}
	v := probe.Video()
	if v == nil || v.Width <= 0 || v.Height <= 0 {
		return Result{}, bus.Permanent(errors.New("probe video: no video stream"))
	}
	res := Result{Video: Size{Width: v.Width, Height: v.Height}, Square: min(v.Width, v.Height)}

	full, err := media.LocalArg(fullPath)
	if err != nil {
		return Result{}, err
	}
	square, err := media.LocalArg(squarePath)
	if err != nil {
		return Result{}, err
	}
	// One decode feeds both outputs: pick the frame, then split it.
	graph := "[0:v:0]thumbnail=" + strconv.Itoa(frames) + ",split=2[full][sq0];" +
		`[sq0]crop=min(iw\,ih):min(iw\,ih)[sq]`
	args := []string{"-y", "-loglevel", "error", "-i", in,
		"-filter_complex", graph,
		"-map", "[full]", "-frames:v", "1", "-q:v", jpegQuality, "-f", "image2", "-update", "1", full,
		"-map", "[sq]", "-frames:v", "1", "-q:v", jpegQuality, "-f", "image2", "-update", "1", square,
	}
	if err := media.Run(ctx, args); err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("extract thumbnail: %w", err)
		}
		// ffmpeg read the header but could not decode the frames.
		return Result{}, bus.Permanent(fmt.Errorf("extract thumbnail: %w", err))
	}
	for _, p := range []string{fullPath, squarePath} {
		st, err := os.Stat(p)
		if err != nil || st.Size() == 0 {
			return Result{}, bus.Permanent(fmt.Errorf("extract thumbnail: ffmpeg wrote no image (%s)", p))
		}
	}
	return res, nil
}
