// Package config reads typed configuration from the environment. Services
// declare a struct, fill it with an Env reader in main, and validate it; the
// reader collects every problem so one start-up error lists them all.
package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads variables with a common prefix (BACKBEAT_) and remembers errors.
type Env struct {
	Prefix string
	errs   []error
	lookup func(string) (string, bool)
}

// NewEnv reads the process environment under prefix (e.g. "BACKBEAT_").
func NewEnv(prefix string) *Env { return &Env{Prefix: prefix, lookup: os.LookupEnv} }

func (e *Env) get(name string) (string, bool) {
	v, ok := e.lookup(e.Prefix + name)
	if !ok || v == "" {
		return "", false
	}
	return v, true
}

// String returns the variable or def.
func (e *Env) String(name, def string) string {
	if v, ok := e.get(name); ok {
		return v
	}
	return def
}

// Required returns the variable and records an error when it is unset.
func (e *Env) Required(name string) string {
	v, ok := e.get(name)
	if !ok {
		e.errs = append(e.errs, fmt.Errorf("%s%s is required", e.Prefix, name))
	}
	return v
}

// Int returns the variable parsed as an int, or def.
func (e *Env) Int(name string, def int) int {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s%s=%q: not an integer", e.Prefix, name, v))
		return def
	}
	return n
}

// Bool returns the variable parsed as a bool, or def.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s%s=%q: not a boolean", e.Prefix, name, v))
		return def
	}
	return b
}

// Duration returns the variable parsed by time.ParseDuration, or def.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s%s=%q: not a duration (e.g. 90s, 5m)", e.Prefix, name, v))
		return def
	}
	return d
}

// List returns a comma-separated variable split and trimmed, or def.
func (e *Env) List(name string, def []string) []string {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Err returns every problem met while reading, joined, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Common is what every service reads: where NATS, the database and storage are,
// and where it listens for health and metrics.
type Common struct {
	// NATSURL of the JetStream server(s).
	NATSURL string
	// NATSCreds is a .creds file for the service's NATS user (optional).
	NATSCreds string
	// NATSUser and NATSPassword are the service's own NATS user
	// (deployments/nats/accounts.conf). The password is never logged.
	NATSUser     string
	NATSPassword string
	// Prefix starts every subject.
	Prefix string
	// BlobURL selects object storage: file:///dir or s3://key:secret@host:port/bucket.
	BlobURL string
	// DatabaseURL is postgres://… or sqlite://path (coordinator and api only).
	DatabaseURL string
	// HTTPAddr serves /healthz, /readyz and /metrics (and the service's API).
	HTTPAddr string
	// OpsAddr, when set, serves /healthz, /readyz and /metrics on a port of
	// their own, and HTTPAddr no longer serves /metrics.
	OpsAddr string
	// LogLevel of the JSON logger.
	LogLevel string
	// Pools the topology has consumers for (checked at start-up, created by
	// `backbeat provision`).
	Pools []string
	// Replicas of streams and buckets, for `backbeat provision`.
	Replicas int
}

// LoadCommon reads the Common settings from e.
func LoadCommon(e *Env) Common {
	return Common{
		NATSURL:   e.String("NATS_URL", "nats://127.0.0.1:4222"),
		NATSCreds: e.String("NATS_CREDS", ""),
		NATSUser:  e.String("NATS_USER", ""),
		// Read from the environment, not logged; a Secret sets it.
		NATSPassword: e.String("NATS_PASSWORD", ""),
		Prefix:       e.String("PREFIX", "backbeat"),
		BlobURL:      e.String("BLOB_URL", ".data/blob"),
		DatabaseURL:  e.String("DATABASE_URL", ""),
		HTTPAddr:     e.String("HTTP_ADDR", ":8080"),
		OpsAddr:      e.String("OPS_ADDR", ""),
		LogLevel:     e.String("LOG_LEVEL", "info"),
		Pools:        e.List("POOLS", []string{"gpu", "cpu"}),
		Replicas:     e.Int("REPLICAS", 1),
	}
}
