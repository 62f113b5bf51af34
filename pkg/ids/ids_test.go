package ids_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/ids"
)

func TestValidateVideoID(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a", "v1", "demo-1795517804", "A_b-9", "x123456789012345678901234567890123456789012345678901234567890123"[:64]} {
		require.NoError(t, ids.ValidateVideoID(ok), ok)
	}
	for _, bad := range []string{"", "../x", "a/b", "a.b", "-a", "_a", "a b", "a*", "a>", "é", string(make([]byte, 65))} {
		require.Error(t, ids.ValidateVideoID(bad), "%q", bad)
	}
}

func TestRunIDsAreSafeTokens(t *testing.T) {
	t.Parallel()
	require.NotEqual(t, ids.NewRunID(), ids.NewRunID())
	require.NoError(t, ids.ValidateVideoID(ids.NewRunID()), "run ids are safe tokens too")
}
