package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/store"
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

// TestOnlyOwnerUploads: uploads live under a video id, and only the id's
// owner may write there. The first upload (or create) of an unused id claims
// it for its user, so another user can neither overwrite the files nor create
// a video that renders them.
func TestOnlyOwnerUploads(t *testing.T) {
	t.Parallel()
	e := apitest.New(t)
	_, key2 := e.AddUser(t, "u2")
	upload := func(key, vid, kind string, body []byte) int {
		t.Helper()
		var eb api.ErrorBody
		code := call(t, "POST", e.URL+"/v1/uploads?video_id="+vid+"&kind="+kind, key, body, &eb)
		if code >= 400 {
			require.NotEmpty(t, eb.Error)
		}
		return code
	}

	// A video u1 created (the coordinator wrote its row).
	e.SeedVideo(t, store.Video{ID: "made", UserID: e.UserID, RunID: "r1", Status: store.StatusReady}, store.StageDone)
	require.Equal(t, http.StatusForbidden, upload(key2, "made", "audio", apitest.WAV(10)))
	require.Equal(t, http.StatusCreated, upload(e.Key, "made", "audio", apitest.WAV(10)))

	// An unused id: u1's first upload claims it.
	require.Equal(t, http.StatusCreated, upload(e.Key, "fresh", "audio", apitest.WAV(100)))
	require.Equal(t, http.StatusForbidden, upload(key2, "fresh", "audio", apitest.WAV(7)))
	require.Equal(t, http.StatusForbidden, upload(key2, "fresh", "cover", apitest.PNG))
	info, err := e.Objects.Stat(t.Context(), "uploads/fresh/audio.wav")
	require.NoError(t, err)
	require.Equal(t, int64(len(apitest.WAV(100))), info.Size, "u1's upload was overwritten")
	create := api.CreateRequest{VideoID: "fresh", AudioKey: "uploads/fresh/audio.wav", StartSeconds: 0, EndSeconds: 0.01,
		Template: "spectrum", Format: "square"}
	var eb api.ErrorBody
	require.Equal(t, http.StatusForbidden, call(t, "POST", e.URL+"/v1/videos", key2, create, &eb))
	require.Contains(t, eb.Error, "belongs to another user")
	// Until it is created, the claimed id is no video to look at.
	require.Equal(t, http.StatusNotFound, call(t, "GET", e.URL+"/v1/videos/fresh", e.Key, nil, nil))
	require.Equal(t, http.StatusNotFound, call(t, "GET", e.URL+"/v1/videos/fresh", key2, nil, nil))

	// A bad upload claims nothing: u2 can still take the id.
	require.Equal(t, http.StatusBadRequest, upload(e.Key, "other", "audio", []byte("<html>not audio</html>")))
	require.Equal(t, http.StatusCreated, upload(key2, "other", "audio", apitest.WAV(10)))
	require.Equal(t, http.StatusForbidden, upload(e.Key, "other", "audio", apitest.WAV(10)))

	// Operators act on users' videos; they do not upload for them.
	require.Equal(t, http.StatusForbidden, upload(apitest.AdminKey, "fresh", "audio", apitest.WAV(10)))
	require.Equal(t, http.StatusForbidden, upload(apitest.AdminKey, "unclaimed", "audio", apitest.WAV(10)))

	require.Empty(t, e.Events(t, e.Pub.Subjects().Events()))
	require.Equal(t, http.StatusAccepted, call(t, "POST", e.URL+"/v1/videos", e.Key, create, nil))
	require.Len(t, e.Events(t, e.Pub.Subjects().Events()), 1)
}
