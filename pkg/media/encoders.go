package media

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
)

// encoderCache remembers ffmpeg's encoder list after the first successful
// query; the binary does not change while a process runs.
var encoderCache struct {
	mu   sync.Mutex
	list map[string]bool
}

// Encoders lists the encoders compiled into ffmpeg (`ffmpeg -encoders`).
// Being listed does not mean usable: h264_nvenc is listed on machines with no
// NVIDIA GPU and fails when opened.
func Encoders(ctx context.Context) (map[string]bool, error) {
	encoderCache.mu.Lock()
	defer encoderCache.mu.Unlock()
	if encoderCache.list != nil {
		return encoderCache.list, nil
	}
	out, err := FFmpeg(ctx, "-nostdin", "-encoders").Output()
	if err != nil {
		return nil, fmt.Errorf("list encoders: %w", err)
	}
	list := parseEncoders(out)
	if len(list) == 0 {
		return nil, fmt.Errorf("list encoders: no encoders in ffmpeg output")
	}
	encoderCache.list = list
	return list, nil
}

// HasEncoder reports whether ffmpeg was built with the named encoder, so the
// renderer can choose libx264 or h264_nvenc before it starts a job. Errors
// count as "no".
func HasEncoder(ctx context.Context, name string) bool {
	list, err := Encoders(ctx)
	return err == nil && list[name]
}

// parseEncoders reads the table after the " ------" separator: each line is
// " <6 flag chars> <name> <description>".
func parseEncoders(out []byte) map[string]bool {
	list := make(map[string]bool)
	sc := bufio.NewScanner(bytes.NewReader(out))
	inTable := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !inTable {
			inTable = strings.HasPrefix(line, "---")
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 && len(fields[0]) == 6 {
			list[fields[1]] = true
		}
	}
	return list
}
