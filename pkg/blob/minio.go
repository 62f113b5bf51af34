package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// MinIOConfig locates one bucket on S3-compatible storage (MinIO, S3, R2).
type MinIOConfig struct {
	// Endpoint is host[:port], without scheme.
	Endpoint  string
	AccessKey string
	SecretKey string
	Bucket    string
	// Secure selects https; MinIO in dev and tests listens on plain http.
	Secure bool
	// Region is optional for MinIO; S3 wants the bucket's region.
	Region string
}

func (c MinIOConfig) validate() error {
	switch {
	case c.Endpoint == "":
		return errors.New("blob: minio: empty endpoint")
	case strings.Contains(c.Endpoint, "://"):
		return fmt.Errorf("blob: minio: endpoint %q must be host[:port] without scheme", c.Endpoint)
	case c.AccessKey == "" || c.SecretKey == "":
		return errors.New("blob: minio: empty access key or secret key")
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return fmt.Errorf("blob: minio: bucket %q: %w", c.Bucket, err)
	}
	return nil
}

// MinIO is a Store on one bucket of S3-compatible storage through minio-go.
// S3 PUTs are atomic per object, so concurrent writers never expose a partial
// object; the ETag is the server's (MD5, or MD5-of-parts for multipart uploads).
type MinIO struct {
	client *minio.Client
	bucket string
	region string
}

var _ Store = (*MinIO)(nil)

// NewMinIO connects to cfg.Endpoint and creates cfg.Bucket if it is missing,
// so a fresh MinIO needs no manual setup before the services start.
func NewMinIO(ctx context.Context, cfg MinIOConfig) (*MinIO, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: minio client for %s: %w", cfg.Endpoint, err)
	}
	m := &MinIO{client: client, bucket: cfg.Bucket, region: cfg.Region}
	if err := m.ensureBucket(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *MinIO) ensureBucket(ctx context.Context) error {
	ok, err := m.client.BucketExists(ctx, m.bucket)
	if err != nil {
		return fmt.Errorf("blob: minio: check bucket %s: %w", m.bucket, err)
	}
	if ok {
		return nil
	}
	err = m.client.MakeBucket(ctx, m.bucket, minio.MakeBucketOptions{Region: m.region})
	if err != nil {
		// Another replica may have created it between our check and our create.
		if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			return nil
		}
		return fmt.Errorf("blob: minio: create bucket %s: %w", m.bucket, err)
	}
	return nil
}

// Client exposes the underlying minio-go client for operations the Store
// interface does not cover (presigned URLs, listing for purges).
func (m *MinIO) Client() *minio.Client { return m.client }

// Bucket returns the bucket this store writes to.
func (m *MinIO) Bucket() string { return m.bucket }

// Put implements Store. An unknown size (-1) streams as a multipart upload
// with bounded part buffers.
func (m *MinIO) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	ct := contentTypeFor(key, contentType)
	up, err := m.client.PutObject(ctx, m.bucket, key, r, size, minio.PutObjectOptions{ContentType: ct})
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", key, err)
	}
	mod := up.LastModified
	if mod.IsZero() {
		mod = time.Now()
	}
	return Info{Key: key, Size: up.Size, ETag: strings.Trim(up.ETag, `"`), ContentType: ct, ModTime: mod}, nil
}

// PutFile implements Store.
func (m *MinIO) PutFile(ctx context.Context, key, path, contentType string) (Info, error) {
	return putFile(ctx, m, key, path, contentType)
}

// Get implements Store. It issues one GET and describes the object from that
// response, so a missing key fails here with ErrNotFound and a concurrent
// overwrite cannot pair one version's Info with another version's bytes.
func (m *MinIO) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := CheckKey(key); err != nil {
		return nil, Info{}, err
	}
	body, oi, _, err := minio.Core{Client: m.client}.GetObject(ctx, m.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, Info{}, m.mapErr("get", key, err)
	}
	return body, toInfo(key, oi), nil
}

// GetFile implements Store.
func (m *MinIO) GetFile(ctx context.Context, key, path string) (Info, error) {
	return getFile(ctx, m, key, path)
}

// Stat implements Store.
func (m *MinIO) Stat(ctx context.Context, key string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	oi, err := m.client.StatObject(ctx, m.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, m.mapErr("stat", key, err)
	}
	return toInfo(key, oi), nil
}

// copyAttempts bounds the retries of a Copy whose source is replaced between
// its Stat and its CopyObject.
const copyAttempts = 3

// Copy implements Store with one server-side CopyObject (objects up to 5 GiB,
// S3's limit for a single copy), which S3 commits atomically like a PUT. The
// copy is conditional on the ETag the source had when it was described, so
// the returned Info always belongs to the bytes copied.
func (m *MinIO) Copy(ctx context.Context, srcKey, dstKey string) (Info, error) {
	if err := CheckKey(srcKey); err != nil {
		return Info{}, err
	}
	if err := CheckKey(dstKey); err != nil {
		return Info{}, err
	}
	for attempt := 1; ; attempt++ {
		oi, err := m.client.StatObject(ctx, m.bucket, srcKey, minio.StatObjectOptions{})
		if err != nil {
			return Info{}, m.mapErr("copy", srcKey, err)
		}
		src := toInfo(srcKey, oi)
		if srcKey == dstKey {
			return src, nil
		}
		if dst, err := m.Stat(ctx, dstKey); err == nil && sameObject(src, dst) {
			return dst, nil
		}
		up, err := m.client.CopyObject(ctx,
			minio.CopyDestOptions{Bucket: m.bucket, Object: dstKey},
			minio.CopySrcOptions{Bucket: m.bucket, Object: srcKey, MatchETag: src.ETag})
		if err != nil {
			if minio.ToErrorResponse(err).Code == "PreconditionFailed" && attempt < copyAttempts {
				continue // the source was replaced after the Stat: describe it again
			}
			if mapped := m.mapErr("copy", srcKey, err); errors.Is(mapped, ErrNotFound) {
				return Info{}, mapped // the source was deleted after the Stat
			}
			return Info{}, fmt.Errorf("blob: copy %s to %s: %w", srcKey, dstKey, err)
		}
		mod := up.LastModified
		if mod.IsZero() {
			mod = time.Now()
		}
		etag := strings.Trim(up.ETag, `"`)
		if etag == "" {
			etag = src.ETag
		}
		return Info{Key: dstKey, Size: src.Size, ETag: etag, ContentType: src.ContentType, ModTime: mod}, nil
	}
}

// Delete implements Store; S3 already treats deleting a missing key as success.
func (m *MinIO) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := m.client.RemoveObject(ctx, m.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(m.mapErr("delete", key, err), ErrNotFound) {
			return nil
		}
		return fmt.Errorf("blob: delete %s: %w", key, err)
	}
	return nil
}

// Ping implements Store: the bucket must exist and the credentials must work.
func (m *MinIO) Ping(ctx context.Context) error {
	ok, err := m.client.BucketExists(ctx, m.bucket)
	if err != nil {
		return fmt.Errorf("blob: ping bucket %s: %w", m.bucket, err)
	}
	if !ok {
		return fmt.Errorf("blob: ping: bucket %s does not exist", m.bucket)
	}
	return nil
}

// RemoveBucket deletes every object and then the bucket itself. Tests use it
// to clean up their per-test bucket; services never call it.
func (m *MinIO) RemoveBucket(ctx context.Context) error {
	objs := m.client.ListObjects(ctx, m.bucket, minio.ListObjectsOptions{Recursive: true})
	for rerr := range m.client.RemoveObjects(ctx, m.bucket, objs, minio.RemoveObjectsOptions{}) {
		if rerr.Err != nil {
			return fmt.Errorf("blob: empty bucket %s: remove %s: %w", m.bucket, rerr.ObjectName, rerr.Err)
		}
	}
	if err := m.client.RemoveBucket(ctx, m.bucket); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchBucket" {
			return nil
		}
		return fmt.Errorf("blob: remove bucket %s: %w", m.bucket, err)
	}
	return nil
}

// mapErr turns S3's missing-object answers into ErrNotFound.
func (m *MinIO) mapErr(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	if resp.Code == "NoSuchKey" || (resp.Code == "" && resp.StatusCode == http.StatusNotFound) {
		return fmt.Errorf("blob: %s %s: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("blob: %s %s: %w", op, key, err)
}

func toInfo(key string, oi minio.ObjectInfo) Info {
	return Info{
		Key:         key,
		Size:        oi.Size,
		ETag:        strings.Trim(oi.ETag, `"`),
		ContentType: oi.ContentType,
		ModTime:     oi.LastModified,
	}
}
