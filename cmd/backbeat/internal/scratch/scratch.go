// Package scratch makes the throw-away data of one harness run (chaos,
// pipebench): a fresh Postgres database and a fresh MinIO bucket on the
// servers of scripts/services.sh, named so that runs never share them, and
// drops both at the end.
package scratch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backbeat/backbeat/pkg/blob"
)

// Env are the variables New reads (eval "$(scripts/services.sh env)").
var Env = []string{"TEST_DATABASE_URL", "TEST_S3_ENDPOINT", "TEST_S3_ACCESS_KEY", "TEST_S3_SECRET_KEY"}

// CheckEnv returns an error naming the first of Env that is unset.
func CheckEnv() error {
	for _, v := range Env {
		if os.Getenv(v) == "" {
			return fmt.Errorf("%s unset: eval \"$(scripts/services.sh env)\" first", v)
		}
	}
	return nil
}

// Data is one run's database and bucket.
type Data struct {
	// AdminURL is TEST_DATABASE_URL, which creates and drops the database.
	AdminURL string
	// DBName and DBURL are the database's name and its URL.
	DBName, DBURL string
	// Bucket and BlobURL are the bucket's name and its s3:// URL
	// (blob.Open creates the bucket on first use).
	Bucket, BlobURL string
}

// New creates database <prefix>_<suffix> and names bucket <prefix>-<suffix>
// (prefix: lower-case letters and digits). Drop removes both, even when New
// failed half way.
func New(ctx context.Context, prefix string) (*Data, error) {
	if err := CheckEnv(); err != nil {
		return nil, err
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	suffix := fmt.Sprintf("%d%s", time.Now().Unix(), hex.EncodeToString(b))
	d := &Data{AdminURL: os.Getenv("TEST_DATABASE_URL"), Bucket: prefix + "-" + suffix}
	d.BlobURL = fmt.Sprintf("s3://%s:%s@%s/%s?secure=false", url.QueryEscape(os.Getenv("TEST_S3_ACCESS_KEY")),
		url.QueryEscape(os.Getenv("TEST_S3_SECRET_KEY")), os.Getenv("TEST_S3_ENDPOINT"), d.Bucket)
	conn, err := pgx.Connect(ctx, d.AdminURL)
	if err != nil {
		return d, fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(ctx)
	name := prefix + "_" + suffix
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return d, fmt.Errorf("create database %s: %w", name, err)
	}
	d.DBName = name
	u, err := url.Parse(d.AdminURL)
	if err != nil {
		return d, fmt.Errorf("parse TEST_DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	d.DBURL = u.String()
	return d, nil
}

// Drop drops the database (closing its connections) and removes the bucket
// with everything in it; either may not exist.
func (d *Data) Drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var errs []error
	if d.DBName != "" {
		conn, err := pgx.Connect(ctx, d.AdminURL)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+d.DBName+" WITH (FORCE)")
			conn.Close(ctx)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("drop database %s: %w", d.DBName, err))
		}
	}
	if d.BlobURL != "" {
		st, err := blob.Open(ctx, d.BlobURL)
		if err == nil {
			if m, ok := st.(*blob.MinIO); ok {
				err = m.RemoveBucket(ctx)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove bucket %s: %w", d.Bucket, err))
		}
	}
	return errors.Join(errs...)
}
