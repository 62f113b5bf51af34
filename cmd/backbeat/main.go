// Command backbeat runs the whole pipeline locally (`backbeat dev`) and is
// the client of a running one: submit, watch, status, cancel, recover, and
// for operators recover, retry, replay and dlq (the API's admin endpoints) and provision (the JetStream topology).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/backbeat/backbeat/cmd/backbeat/internal/cli"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/devstack"
	"github.com/backbeat/backbeat/cmd/backbeat/internal/frame"
)

var commands = map[string]func(context.Context, cli.Env, []string) error{
	"dev":       func(ctx context.Context, _ cli.Env, args []string) error { return devstack.Main(ctx, args) },
	"submit":    cli.Submit,
	"watch":     cli.Watch,
	"status":    cli.Status,
	"cancel":    cli.Cancel,
	"recover":   cli.Recover,
	"replay":    cli.Replay,
	"retry":     cli.Retry,
	"dlq":       cli.DLQ,
	"provision": cli.Provision,
	"demo":      cli.Demo,
	"frame":     func(ctx context.Context, _ cli.Env, args []string) error { return frame.Main(ctx, args) },
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: backbeat dev|demo|frame|submit|watch|status|cancel|recover|retry|replay|dlq|provision [flags] (-h: a command's flags)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := commands[os.Args[1]](ctx, cli.DefaultEnv(), os.Args[2:])
	stop()
	var exit cli.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		os.Exit(exit.Code)
	case errors.Is(err, cli.ErrUsage):
		fmt.Fprintln(os.Stderr, "backbeat:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "backbeat:", err)
		os.Exit(1)
	}
}
