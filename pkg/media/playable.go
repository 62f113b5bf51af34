package media

import (
	"context"
	"fmt"
	"os"

	"github.com/backbeat/backbeat/pkg/mp4"
)

// CheckPlayable decodes every frame and sample of a video with ffmpeg (any
// decode error fails) and checks that the MP4's moov box comes before its
// mdat (+faststart), so a browser starts playing before the download ends.
func CheckPlayable(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	order, err := mp4.TopLevelBoxes(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !mp4.Progressive(order) {
		return fmt.Errorf("%s: moov is not before mdat (boxes %v): not progressive (+faststart)", path, order)
	}
	arg, err := localArg(path)
	if err != nil {
		return err
	}
	if err := Run(ctx, []string{"-v", "error", "-xerror", "-i", arg, "-f", "null", "-"}); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
