// Package logging builds the zap loggers every service uses: JSON to stderr,
// with the service name on every line, so that logs of all services can be
// joined on video_id and run_id.
package logging

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a JSON logger at level ("debug", "info", "warn", "error").
func New(service, level string) (*zap.Logger, error) {
	l, err := NewRoot(level, "stderr")
	if err != nil {
		return nil, err
	}
	return l.With(zap.String("service", service)), nil
}

// NewFile is New writing to a file instead of stderr, for `backbeat demo`,
// whose terminal shows a progress bar.
func NewFile(service, level, path string) (*zap.Logger, error) {
	l, err := NewRoot(level, path)
	if err != nil {
		return nil, err
	}
	return l.With(zap.String("service", service)), nil
}

// NewRoot is the logger of a process that runs several services (`backbeat
// dev`): the same JSON to path ("stderr" or a file), without a service
// field, which the process adds once per service. A JSON line never names a
// key twice, so a logger that already has "service" must not get another.
func NewRoot(level, path string) (*zap.Logger, error) {
	ws, _, err := zap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	return NewTo(level, ws)
}

// NewTo is NewRoot writing to w (tests collect the lines this way).
func NewTo(level string, w zapcore.WriteSyncer) (*zap.Logger, error) {
	lvl := zapcore.InfoLevel
	if level != "" {
		if err := lvl.Set(level); err != nil {
			return nil, fmt.Errorf("log level %q: %w", level, err)
		}
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), w, lvl),
		zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel), zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(os.Stderr)))), nil
}
