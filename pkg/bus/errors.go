package bus

import (
	"errors"
	"fmt"
)

// ErrNotCurrent says the run or attempt a job belongs to has been superseded,
// cancelled or stalled. Workers return it (wrapped) to drop the job: it is
// acknowledged, not retried and not reported as a failure.
var ErrNotCurrent = errors.New("run is no longer current")

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks an error that retrying cannot fix (bad input, missing
// object, unknown template): the message is terminated and the coordinator is
// told at once instead of after every retry is spent.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return Permanent(fmt.Errorf(format, args...))
}

// IsPermanent reports whether err, or anything it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
