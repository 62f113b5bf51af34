// Package cli holds the `backbeat` client commands: submit, watch, status,
// cancel and recover talk to the HTTP API; replay and dlq read the EVENTS
// stream directly for operators. Each command is a function of an Env and its
// arguments, so tests run them against a real API without a process.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// Env is what a command may touch: its output streams, the environment and
// the clock of the progress poll. Tests fill it with buffers.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads BACKBEAT_API_URL, BACKBEAT_API_KEY, BACKBEAT_NATS_URL, ….
	Getenv func(string) string
	// StderrTTY redraws the progress bar in place instead of printing lines.
	StderrTTY bool
	// HTTP is the client for API calls.
	HTTP *http.Client
	// Poll is the interval between status polls while waiting.
	Poll time.Duration
	// DevKeyFile is read for the API key when no flag or variable gives one.
	DevKeyFile string
	// DevAdminKeyFile is read for the admin key (the operator commands)
	// when no flag or variable gives one.
	DevAdminKeyFile string
}

// DefaultEnv is the process's real environment.
func DefaultEnv() Env {
	return Env{
		Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		StderrTTY: isTerminal(os.Stderr),
		HTTP:      &http.Client{Timeout: 10 * time.Minute},
		Poll:      500 * time.Millisecond, DevKeyFile: ".data/dev/api-key",
		DevAdminKeyFile: ".data/dev/admin-key",
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ExitError is a failure already explained on the output: main exits with
// Code without printing it again.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ErrUsage marks bad command-line arguments (exit status 2).
var ErrUsage = errors.New("usage")

func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// DefaultAPIURL is where `backbeat dev` serves the API.
const DefaultAPIURL = "http://127.0.0.1:8080"

// apiFlags are the connection flags every API command takes.
type apiFlags struct {
	url, key string
}

func (a *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "api", "", "API base URL (default $BACKBEAT_API_URL or "+DefaultAPIURL+")")
	fs.StringVar(&a.key, "key", "", "API key (default $BACKBEAT_API_KEY, then .data/dev/api-key)")
}

// client resolves flags, environment and the dev key file, in that order.
func (a *apiFlags) client(env Env) (*Client, error) {
	return newClient(env, a.url, a.key, "BACKBEAT_API_KEY", env.DevKeyFile,
		"no API key: pass --key, set BACKBEAT_API_KEY, or run `backbeat dev` (it writes .data/dev/api-key)")
}

// newClient is a client of the API at url (else $BACKBEAT_API_URL, else
// DefaultAPIURL) with key (else the variable keyVar, else the contents of
// keyFile); missing is the error when none gives a key.
func newClient(env Env, url, key, keyVar, keyFile, missing string) (*Client, error) {
	url = firstNonEmpty(url, env.Getenv("BACKBEAT_API_URL"), DefaultAPIURL)
	key = firstNonEmpty(key, env.Getenv(keyVar))
	if key == "" && keyFile != "" {
		if b, err := os.ReadFile(keyFile); err == nil {
			key = strings.TrimSpace(string(b))
		}
	}
	if key == "" {
		return nil, errors.New(missing)
	}
	return &Client{BaseURL: strings.TrimRight(url, "/"), Key: key, HTTP: env.HTTP}, nil
}

// adminFlags are the connection flags of the operator commands, which call
// the API's admin endpoints with the admin key.
type adminFlags struct {
	url, key string
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "api", "", "API base URL (default $BACKBEAT_API_URL or "+DefaultAPIURL+")")
	fs.StringVar(&a.key, "admin-key", "", "the API's admin key (default $BACKBEAT_ADMIN_KEY, then .data/dev/admin-key)")
}

// client resolves flags, environment and the dev admin key file, in that order.
func (a *adminFlags) client(env Env) (*Client, error) {
	return newClient(env, a.url, a.key, "BACKBEAT_ADMIN_KEY", env.DevAdminKeyFile,
		"no admin key: pass --admin-key, set BACKBEAT_ADMIN_KEY (the api's API_ADMIN_KEY), "+
			"or run `backbeat dev` (it writes .data/dev/admin-key)")
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// newFlagSet makes a FlagSet that reports errors instead of exiting and
// prints its usage on env.Stderr.
func newFlagSet(env Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: backbeat %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags given before, between or after positional arguments
// (`submit song.mp3 --start 10`), which flag.Parse alone stops at, and
// returns the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, ExitError{Code: 0}
			}
			return nil, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// oneArg parses and demands exactly one positional argument.
func oneArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", usageError("want exactly one %s", what)
	}
	return pos[0], nil
}
