package bucket_test

import (
	"testing"

	"github.com/thanos-io/objstore"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil/s3server"
)

// The objstore acceptance suite against the S3 backend, on a real S3 server (versitygw)
// that the test starts; skipped when versitygw is not installed, except under CI=true.
func TestS3Acceptance(t *testing.T) {
	cfg := bucket.Config{Backend: bucket.BackendS3, S3: s3server.Start(t)}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	bkt, err := bucket.New(cfg, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bkt.Close() })
	objstore.AcceptanceTest(t, bkt)
}
