package blob_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/blob"
	"github.com/backbeat/backbeat/pkg/testenv"
)

func TestMinIOConformance(t *testing.T) {
	t.Parallel()
	testStore(t, func(t *testing.T) blob.Store { return testenv.MinIO(t) })
}

func TestOpenS3URL(t *testing.T) {
	t.Parallel()
	m := testenv.MinIO(t)
	u := fmt.Sprintf("s3://%s:%s@%s/%s?secure=false", os.Getenv("TEST_S3_ACCESS_KEY"),
		os.Getenv("TEST_S3_SECRET_KEY"), os.Getenv("TEST_S3_ENDPOINT"), m.Bucket())
	s, err := blob.Open(context.Background(), u)
	require.NoError(t, err)
	require.IsType(t, &blob.MinIO{}, s)
	require.NoError(t, s.Ping(context.Background()))
}
