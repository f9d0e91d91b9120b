package bucket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The objstore acceptance suite: our filesystem bucket behaves like every other backend.
func TestFilesystemAcceptance(t *testing.T) {
	b, err := NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	objstore.AcceptanceTest(t, b)
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("sender went away")
	}
	n := min(len(p), r.n)
	for i := range n {
		p[i] = 'x'
	}
	r.n -= n
	return n, nil
}

func TestFilesystemUploadIsAtomic(t *testing.T) {
	dir := t.TempDir()
	b, err := NewFilesystem(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Upload(ctx, "a/obj.json", strings.NewReader("old")); err != nil {
		t.Fatal(err)
	}
	// A failed upload leaves the previous object whole and no temporary file behind.
	if err := b.Upload(ctx, "a/obj.json", &failingReader{n: 10}); err == nil {
		t.Fatal("upload from a failing reader succeeded")
	}
	rc, err := b.Get(ctx, "a/obj.json")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "old" {
		t.Fatalf("object after failed upload: %q", got)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "a"))
	if len(entries) != 1 {
		t.Fatalf("leftover files after failed upload: %v", entries)
	}
	// Listings hide uploads in progress.
	if err := os.WriteFile(filepath.Join(dir, "a", tmpPrefix+"123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := b.Iter(ctx, "a/", func(n string) error { names = append(names, n); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "a/obj.json" {
		t.Fatalf("Iter listed %v", names)
	}
	names = nil
	if err := b.IterWithAttributes(ctx, "", func(a objstore.IterObjectAttributes) error { names = append(names, a.Name); return nil }, objstore.WithRecursiveIter()); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 {
		t.Fatalf("recursive IterWithAttributes listed %v", names)
	}
	if err := b.Upload(ctx, "a/obj.json", bytes.NewReader([]byte("new"))); err != nil {
		t.Fatal(err)
	}
	rc, _ = b.Get(ctx, "a/obj.json")
	got, _ = io.ReadAll(rc)
	rc.Close()
	if string(got) != "new" {
		t.Fatalf("object after overwrite: %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Backend: "filesystem"}, ""},
		{Config{Backend: "gcs"}, "unknown backend"},
		{Config{Backend: "s3"}, "endpoint"},
		{Config{Backend: "s3", S3: S3Config{Endpoint: "x"}}, "bucket name"},
		{Config{Backend: "s3", S3: S3Config{Endpoint: "x", Bucket: "b", AccessKeyID: "k"}}, "together"},
		{Config{Backend: "s3", S3: S3Config{Endpoint: "x", Bucket: "b"}}, ""},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
