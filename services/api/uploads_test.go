package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/services/api"
	"github.com/backbeat/backbeat/services/api/apitest"
)

// zeros reads as an endless run of zero bytes without allocating them.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestChunkedUploadMemoryIsBounded: a chunked upload (no Content-Length) to
// S3 must not cost memory in proportion to the largest object S3 allows.
// minio-go, told the size is unknown (-1), allocates one part buffer sized
// for a 5 TiB object (528 MiB) per upload; the API now spools the body to a
// file and hands minio-go the real size, so it streams the parts from the file.
// TotalAlloc counts every allocation made during the upload, the bytes of the
// body included if anything held them in memory, so the bound is well below
// the body's size. This test is not parallel: TotalAlloc is process-wide.
func TestChunkedUploadMemoryIsBounded(t *testing.T) {
	e := apitest.NewOnMinIO(t)
	const size = 64 << 20
	wav := apitest.WAV(0)
	body := io.MultiReader(bytes.NewReader(wav), io.LimitReader(zeros{}, size-int64(len(wav))))
	req, err := http.NewRequest("POST", e.URL+"/v1/uploads?video_id=big1&kind=audio", body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+e.Key)
	req.ContentLength = -1
	req.TransferEncoding = []string{"chunked"}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, resp.Body.Close())
	require.NoError(t, err)
	runtime.ReadMemStats(&after)

	require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %s", data)
	var up api.UploadResponse
	require.NoError(t, json.Unmarshal(data, &up))
	require.Equal(t, api.UploadResponse{Key: "uploads/big1/audio.wav", Size: size, ContentType: "audio/wav"}, up)
	info, err := e.Objects.Stat(t.Context(), up.Key)
	require.NoError(t, err)
	require.Equal(t, int64(size), info.Size)

	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %.1f MiB during a %d MiB chunked upload", float64(alloc)/(1<<20), size>>20)
	require.Less(t, alloc, uint64(48<<20), "allocated %d bytes during a %d-byte chunked upload", alloc, size)
}
