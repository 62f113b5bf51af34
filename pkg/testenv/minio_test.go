package testenv_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/testenv"
)

func TestBucketName(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	for _, name := range []string{"TestX", "TestStore/Round_Trip#01", "", "---", strings.Repeat("VeryLong/", 20)} {
		got := testenv.BucketName(name)
		require.Regexp(t, valid, got, name)
		require.NotContains(t, got, "--", name)
		require.LessOrEqual(t, len(got), 63, name)
	}
	require.NotEqual(t, testenv.BucketName("TestX"), testenv.BucketName("TestX"))
}
