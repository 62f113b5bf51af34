package api

import (
	"fmt"
	"io"
	"os"
)

// spoolUpload copies an upload, its head already read and the rest of its
// body, into an unlinked temporary file in dir, and returns the file
// positioned at its start, with its size. The body enforces the size limit
// (limitedReader); its errors come back as they are.
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
// (too large, cut off) never starts a multipart upload.
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
