package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/backbeat/backbeat/pkg/config"
)

func TestEnvReadsTypedValues(t *testing.T) {
	t.Setenv("BBT_STALL", "90s")
	t.Setenv("BBT_POOLS", " gpu, cpu ,,")
	t.Setenv("BBT_N", "7")
	t.Setenv("BBT_ON", "true")
	e := config.NewEnv("BBT_")
	require.Equal(t, 90*time.Second, e.Duration("STALL", time.Minute))
	require.Equal(t, []string{"gpu", "cpu"}, e.List("POOLS", nil))
	require.Equal(t, 7, e.Int("N", 1))
	require.True(t, e.Bool("ON", false))
	require.Equal(t, "def", e.String("MISSING", "def"))
	require.NoError(t, e.Err())
}

func TestEnvReportsEveryProblemAtOnce(t *testing.T) {
	t.Setenv("BBT_STALL", "soon")
	t.Setenv("BBT_N", "seven")
	e := config.NewEnv("BBT_")
	require.Equal(t, time.Minute, e.Duration("STALL", time.Minute), "the default stands in")
	e.Int("N", 1)
	e.Required("DATABASE_URL")
	err := e.Err()
	require.Error(t, err)
	for _, want := range []string{"BBT_STALL", "BBT_N", "BBT_DATABASE_URL is required"} {
		require.Contains(t, err.Error(), want)
	}
}
