package s3server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	"go.uber.org/goleak"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil/s3server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStart(t *testing.T) {
	cfg := s3server.Start(t)
	bcfg := bucket.Config{Backend: bucket.BackendS3, S3: cfg}
	if err := bcfg.Validate(); err != nil {
		t.Fatal(err)
	}
	bkt, err := bucket.New(bcfg, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	ctx := context.Background()
	if err := bkt.Upload(ctx, "hello", bytes.NewReader([]byte("world"))); err != nil {
		t.Fatal(err)
	}
	rc, err := bkt.Get(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || string(got) != "world" {
		t.Fatalf("read back %q, %v", got, err)
	}

	// A second server is independent: its bucket starts empty.
	other, err := bucket.New(bucket.Config{Backend: bucket.BackendS3, S3: s3server.Start(t)}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if ok, err := other.Exists(ctx, "hello"); err != nil || ok {
		t.Fatalf("second server sees the first one's object: %v %v", ok, err)
	}

	// Wrong credentials are refused: the server checks signatures.
	bad := cfg
	bad.SecretAccessKey += "x"
	badBkt, err := bucket.New(bucket.Config{Backend: bucket.BackendS3, S3: bad}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer badBkt.Close()
	if _, err := badBkt.Exists(ctx, "hello"); err == nil {
		t.Fatal("a request with the wrong secret key succeeded")
	}
}
