// Package bucket opens the object store that holds Strata's durable state: resource
// metadata now, TSDB blocks later. Start from New; the filesystem backend is the default
// and needs no other process, S3 serves any S3-compatible store.
package bucket

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	kitlog "github.com/go-kit/log"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"github.com/thanos-io/objstore/providers/s3"
)

// Backends.
const (
	BackendFilesystem = "filesystem"
	BackendS3         = "s3"
)

// Config selects and configures the bucket backend.
type Config struct {
	Backend    string           `yaml:"backend"`
	Filesystem FilesystemConfig `yaml:"filesystem"`
	S3         S3Config         `yaml:"s3"`
}

// FilesystemConfig configures the filesystem backend.
type FilesystemConfig struct {
	// Dir is the bucket's root directory. Empty means <data-dir>/bucket.
	Dir string `yaml:"dir"`
}

// S3Config configures the S3 backend.
type S3Config struct {
	Endpoint string `yaml:"endpoint"`
	Bucket   string `yaml:"bucket"`
	Region   string `yaml:"region"`
	// AccessKeyID and SecretAccessKey empty mean the standard AWS credential chain
	// (environment, shared files, instance role).
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	Insecure        bool   `yaml:"insecure"`
}

// RegisterFlags registers the bucket flags under "bucket.".
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Backend, "bucket.backend", BackendFilesystem, "Object store backend: filesystem or s3.")
	f.StringVar(&c.Filesystem.Dir, "bucket.filesystem.dir", "", "Root directory of the filesystem bucket. Empty means <data-dir>/bucket.")
	f.StringVar(&c.S3.Endpoint, "bucket.s3.endpoint", "", "S3 endpoint host[:port], e.g. s3.us-east-1.amazonaws.com or 127.0.0.1:7070.")
	f.StringVar(&c.S3.Bucket, "bucket.s3.bucket", "", "S3 bucket name.")
	f.StringVar(&c.S3.Region, "bucket.s3.region", "", "S3 region. Empty lets the client discover it.")
	f.StringVar(&c.S3.AccessKeyID, "bucket.s3.access-key-id", "", "S3 access key id. Empty means the standard AWS credential chain.")
	f.StringVar(&c.S3.SecretAccessKey, "bucket.s3.secret-access-key", "", "S3 secret access key. Prefer the config file or the AWS_SECRET_ACCESS_KEY environment variable over this flag.")
	f.BoolVar(&c.S3.Insecure, "bucket.s3.insecure", false, "Use plain HTTP to reach the S3 endpoint.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch c.Backend {
	case BackendFilesystem:
	case BackendS3:
		if c.S3.Endpoint == "" {
			return errors.New("s3 backend needs an endpoint")
		}
		if c.S3.Bucket == "" {
			return errors.New("s3 backend needs a bucket name")
		}
		if (c.S3.AccessKeyID == "") != (c.S3.SecretAccessKey == "") {
			return errors.New("s3 access key id and secret access key must be given together")
		}
	default:
		return fmt.Errorf("unknown backend %q (want %s or %s)", c.Backend, BackendFilesystem, BackendS3)
	}
	return nil
}

// New opens the configured bucket. dataDir resolves the filesystem default.
func New(cfg Config, dataDir string, logger *slog.Logger) (objstore.Bucket, error) {
	switch cfg.Backend {
	case BackendFilesystem:
		dir := cfg.Filesystem.Dir
		if dir == "" {
			dir = filepath.Join(dataDir, "bucket")
		}
		return NewFilesystem(dir)
	case BackendS3:
		return s3.NewBucketWithConfig(kitlog.NewNopLogger(), s3.Config{
			Endpoint:  cfg.S3.Endpoint,
			Bucket:    cfg.S3.Bucket,
			Region:    cfg.S3.Region,
			AccessKey: cfg.S3.AccessKeyID,
			SecretKey: cfg.S3.SecretAccessKey,
			Insecure:  cfg.S3.Insecure,
			// Path-style addressing works with every S3-compatible server.
			BucketLookupType: s3.PathLookup,
			PartSize:         64 << 20,
		}, "strata", nil)
	default:
		return nil, fmt.Errorf("unknown bucket backend %q", cfg.Backend)
	}
}

// tmpPrefix marks files being written; they are invisible to listings.
const tmpPrefix = ".strata-tmp-"

// Filesystem is objstore's filesystem bucket with crash-safe uploads: objects are
// written to a temporary file, synced and renamed into place, so a reader or a crash never
// sees half an object (the upstream provider writes in place).
type Filesystem struct {
	*filesystem.Bucket
	root string
}

// NewFilesystem opens (and creates) a filesystem bucket rooted at dir.
func NewFilesystem(dir string) (*Filesystem, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating bucket directory: %w", err)
	}
	b, err := filesystem.NewBucket(dir)
	if err != nil {
		return nil, fmt.Errorf("opening filesystem bucket %s: %w", dir, err)
	}
	return &Filesystem{Bucket: b, root: dir}, nil
}

// Upload writes r to name atomically.
func (b *Filesystem) Upload(ctx context.Context, name string, r io.Reader, _ ...objstore.ObjectUploadOption) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if name == "" || strings.HasSuffix(name, objstore.DirDelim) {
		return fmt.Errorf("invalid object name %q", name)
	}
	dst := filepath.Join(b.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("creating object directory: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("creating temporary object: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = io.Copy(f, r); err != nil {
		return fmt.Errorf("writing object %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing object %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing object %s: %w", name, err)
	}
	if err = os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("renaming object %s into place: %w", name, err)
	}
	return syncDir(filepath.Dir(dst))
}

// Iter lists objects, hiding uploads in progress.
func (b *Filesystem) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	return b.Bucket.Iter(ctx, dir, func(name string) error {
		if isTmp(name) {
			return nil
		}
		return f(name)
	}, opts...)
}

// IterWithAttributes lists objects with attributes, hiding uploads in progress.
func (b *Filesystem) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, opts ...objstore.IterOption) error {
	return b.Bucket.IterWithAttributes(ctx, dir, func(a objstore.IterObjectAttributes) error {
		if isTmp(a.Name) {
			return nil
		}
		return f(a)
	}, opts...)
}

func isTmp(name string) bool {
	return strings.HasPrefix(filepath.Base(strings.TrimSuffix(name, objstore.DirDelim)), tmpPrefix)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory: %w", err)
	}
	return nil
}
