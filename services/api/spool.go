package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// Defaults of the upload pace (Config.UploadGrace, Config.UploadMinRate).
// At 32 KiB/s, a 100 MiB track may take 53 minutes: a slow mobile link
// still gets through, and nothing holds an upload longer than that.
const (
	DefaultUploadGrace   = 30 * time.Second
	DefaultUploadMinRate = 32 << 10
)

// paceBurst is how far ahead of schedule the pace lets a body's next read
// be, so that a client exactly at the minimum rate is not cut off between
// two TCP segments.
const paceBurst = 64 << 10

// errTooSlow is returned by paceReader once the client missed its schedule.
var errTooSlow = errors.New("upload too slow")

// paceReader reads a request body under a connection read deadline it moves
// before every read, so that a client holds the upload only as long as it
// keeps sending: each read must return within grace, and the first n bytes
// must have arrived by start + grace + n/rate (less a paceBurst of credit).
// A slowloris that sends a byte now and then therefore loses the connection
// after at most grace + limit/rate, instead of holding a goroutine, a file
// and a connection for as long as it likes. The deadline is the server's
// (http.ResponseController), so a read blocked in the kernel is cut off too.
type paceReader struct {
	r     io.Reader
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	n     int64
	slow  bool
}

func newPaceReader(w http.ResponseWriter, body io.Reader, grace time.Duration, rate int64) *paceReader {
	return &paceReader{r: body, rc: http.NewResponseController(w), start: time.Now(), grace: grace, rate: rate}
}

func (p *paceReader) Read(b []byte) (int, error) {
	now := time.Now()
	due := p.start.Add(p.grace + time.Duration(float64(p.n+paceBurst)/float64(p.rate)*float64(time.Second)))
	if stall := now.Add(p.grace); stall.Before(due) {
		due = stall
	}
	if err := p.rc.SetReadDeadline(due); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, fmt.Errorf("set upload read deadline: %w", err)
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if err != nil && isTimeout(err) {
		p.slow = true
		return n, errTooSlow
	}
	return n, err
}

// isTimeout reports whether err is a read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// spoolUpload copies an upload, its head already read and the rest of its
// body, into an unlinked temporary file in dir, and returns the file
// positioned at its start, with its size. The body enforces the size limit
// (limitedReader) and the pace (paceReader); their errors come back as they are.
//
// Spooling is what bounds memory per upload. An upload sent without
// Content-Length has no size to give the object store, and minio-go then
// streams it as a multipart upload whose part buffer is sized so that
// 10 000 parts reach 5 TiB: 528 MiB allocated per upload, and as much of it
// touched as the body fills (docs/benchmarks.md, "Uploads"). With the body
// in a file, the store is given the real size and an io.ReaderAt, and
// minio-go sends the parts as sections of the file without buffering them;
// what an upload costs in memory is the 32 KiB copy buffer and minio-go's
// signing buffers for the four parts it sends at once: about 3 MiB per
// upload in flight, GC slack included (157 MiB peak RSS for 50 concurrent
// 100 MiB uploads, against 5.3 GiB). The price is a write and a read of the
// body on local disk (Config.SpoolDir), and that the object goes to storage
// only once the whole body has arrived; in exchange a body that is refused
// (too large, too slow, cut off) never starts a multipart upload.
//
// Uploads with a Content-Length are spooled too: minio-go would buffer a
// 16 MiB part of each (1.3 GiB peak RSS for the same 50 uploads), and one
// path is easier to reason about than two. The
// file is unlinked as soon as it exists, so a crash leaves nothing behind;
// the caller closes it.
func spoolUpload(dir string, head []byte, body io.Reader) (*os.File, int64, error) {
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return nil, 0, fmt.Errorf("spool upload: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("spool upload: unlink %s: %w", f.Name(), err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
		}
	}()
	if _, err := f.Write(head); err != nil {
		return nil, 0, fmt.Errorf("spool upload: %w", err)
	}
	n, err := io.Copy(f, body)
	if err != nil {
		return nil, 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("spool upload: rewind: %w", err)
	}
	ok = true
	return f, int64(len(head)) + n, nil
}
