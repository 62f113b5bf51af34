// Package logging builds the zap loggers every service uses: JSON to stderr,
// with the service name on every line, so that logs of all services can be
// joined on video_id and run_id.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a JSON logger at level ("debug", "info", "warn", "error").
func New(service, level string) (*zap.Logger, error) {
	return build(service, level, "stderr")
}

// NewFile is New writing to a file instead of stderr, for `backbeat demo`,
// whose terminal shows a progress bar.
func NewFile(service, level, path string) (*zap.Logger, error) {
	return build(service, level, path)
}

func build(service, level, path string) (*zap.Logger, error) {
	lvl := zapcore.InfoLevel
	if level != "" {
		if err := lvl.Set(level); err != nil {
			return nil, fmt.Errorf("log level %q: %w", level, err)
		}
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	cfg.OutputPaths = []string{path}
	l, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return l.With(zap.String("service", service)), nil
}
