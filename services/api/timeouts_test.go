package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/services/api"
	"github.com/backbeat/backbeat/services/api/apitest"
)

// safety is how long a test waits for the server to give up on a slow
// client before it fails. The limits the tests configure are 200 ms (2 s for
// a JSON body), so only a server without them, or one that ignores the
// configured values (the telemetry default ReadHeaderTimeout is 10 s), comes
// near it.
const safety = 5 * time.Second

// dial opens a raw connection to the test server; the client's reads give up
// after safety.
func dial(t *testing.T, e *apitest.Env) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", e.Server.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(safety)))
	return conn
}

// chunk frames p as one chunk of a chunked body.
func chunk(p []byte) []byte {
	return append(append([]byte(fmt.Sprintf("%x\r\n", len(p))), p...), "\r\n"...)
}

// requireClosed reads until the server closes the connection, and fails if
// the client's safety deadline comes first.
func requireClosed(t *testing.T, r io.Reader) {
	t.Helper()
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server kept the connection open for %s", safety)
}

// TestSlowClientTimesOut: a client that connects and then sends slowly, or
// not at all, is cut off; none can hold a connection, a goroutine or an
// upload's buffers for as long as it likes (a slowloris).
func TestSlowClientTimesOut(t *testing.T) {
	t.Parallel()
	e := apitest.New(t, func(c *api.Config) {
		c.ReadHeaderTimeout = 200 * time.Millisecond
		c.IdleTimeout = 200 * time.Millisecond
		c.UploadGrace = 200 * time.Millisecond
		c.UploadMinRate = 1 << 20
		c.RequestTimeout = 2 * time.Second
	})
	uploadHead := "POST /v1/uploads?video_id=slow&kind=audio HTTP/1.1\r\nHost: api\r\n" +
		"Authorization: Bearer " + e.Key + "\r\nTransfer-Encoding: chunked\r\n\r\n"

	t.Run("headers never finish", func(t *testing.T) {
		t.Parallel()
		conn := dial(t, e)
		_, err := io.WriteString(conn, "POST /v1/uploads?video_id=slow&kind=audio HTTP/1.1\r\nHost: api\r\n")
		require.NoError(t, err)
		requireClosed(t, conn)
	})

	t.Run("idle keep-alive connection", func(t *testing.T) {
		t.Parallel()
		conn := dial(t, e)
		_, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n")
		require.NoError(t, err)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		requireClosed(t, br)
	})

	t.Run("upload body stops", func(t *testing.T) {
		t.Parallel()
		conn := dial(t, e)
		_, err := conn.Write(append([]byte(uploadHead), chunk(apitest.WAV(1000))...))
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
		body, _ := io.ReadAll(resp.Body)
		require.Contains(t, string(body), "too slow")
	})

	t.Run("upload body trickles", func(t *testing.T) {
		t.Parallel()
		conn := dial(t, e)
		_, err := conn.Write(append([]byte(uploadHead), chunk(apitest.WAV(1000))...))
		require.NoError(t, err)
		// One byte every 10 ms (100 B/s) never stalls for the grace period,
		// but is far below the minimum rate.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write(chunk([]byte{0})); err != nil {
						return
					}
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	})

	t.Run("JSON body stops", func(t *testing.T) {
		t.Parallel()
		conn := dial(t, e)
		_, err := io.WriteString(conn, "POST /v1/videos HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer "+e.Key+
			"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"+`{"video_id":`)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "%s", body)
		require.Contains(t, string(body), "too slow")
	})
}

// slowStore takes its time to start storing, as S3 far away does.
type slowStore struct {
	blob.Store
	delay time.Duration
}

func (s slowStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (blob.Info, error) {
	time.Sleep(s.delay)
	return s.Store.Put(ctx, key, r, size, contentType)
}

// TestSlowStoreIsNotASlowClient: the pace applies to the client's body, not
// to the time the API then takes to store it. A read deadline still set once
// the body is in would expire under the server's background read and cancel
// the request while the object is being stored (net/http clears it when it
// starts that read, at the body's EOF: this test keeps it that way).
func TestSlowStoreIsNotASlowClient(t *testing.T) {
	t.Parallel()
	local, err := blob.NewLocal(t.TempDir())
	require.NoError(t, err)
	e := apitest.NewOn(t, slowStore{Store: local, delay: time.Second}, func(c *api.Config) {
		c.UploadGrace = 100 * time.Millisecond
	})
	var up api.UploadResponse
	require.Equal(t, http.StatusCreated, call(t, "POST", e.URL+"/v1/uploads?video_id=v1&kind=audio", e.Key, apitest.WAV(4000), &up))
	require.Equal(t, int64(8044), up.Size)
}
