// Package s3server starts a real S3-compatible server for tests: versitygw (Apache-2.0)
// with its posix backend, one process per Start, on a loopback port, with random root
// credentials and a fresh bucket. Start from Start.
//
// The binary is not a module dependency: .ci/install-s3-server.sh installs it into
// $(go env GOPATH)/bin. Without it, Start skips the test, except under CI=true, where a
// missing server must fail the run instead of silently testing less.
package s3server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/stratametrics/strata/internal/bucket"
	"github.com/stratametrics/strata/internal/testutil"
)

// Binary is the name of the server's executable.
const Binary = "versitygw"

// Region is the region the server signs for (versitygw's default).
const Region = "us-east-1"

const (
	healthPath   = "/health"
	startTimeout = 30 * time.Second
	// startAttempts bounds retries when the port picked for the server was taken by
	// someone else before the server bound it.
	startAttempts = 3
	// emptySHA256 is the hex SHA-256 of an empty payload, as SigV4 wants it.
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// Start starts a server that lives until the test ends and returns the configuration of
// the S3 backend that reaches a new, empty bucket on it. Two buckets opened from the
// returned configuration see the same objects.
func Start(t testing.TB) bucket.S3Config {
	t.Helper()
	bin, err := testutil.FindBinary(Binary)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; .ci/install-s3-server.sh installs it: %v", Binary, err)
		}
		t.Skipf("%s is not installed, skipping the S3 test; .ci/install-s3-server.sh installs it: %v", Binary, err)
	}
	cfg := bucket.S3Config{
		Bucket:          "strata-" + randomHex(t, 4),
		Region:          Region,
		AccessKeyID:     "AK" + strings.ToUpper(randomHex(t, 9)),
		SecretAccessKey: randomHex(t, 20),
		Insecure:        true,
	}
	root := t.TempDir() // removed after the server is stopped: cleanups run last-in first-out
	for attempt := 1; ; attempt++ {
		endpoint, err := start(t, bin, root, cfg)
		if err == nil {
			cfg.Endpoint = endpoint
			break
		}
		if !errors.Is(err, testutil.ErrPortTaken) || attempt == startAttempts {
			t.Fatalf("starting %s: %v", Binary, err)
		}
		t.Logf("starting %s: %v; retrying on another port", Binary, err)
	}
	if err := createBucket(cfg); err != nil {
		t.Fatalf("creating bucket %s on %s: %v", cfg.Bucket, Binary, err)
	}
	return cfg
}

// start runs one server process on a free loopback port and waits until it answers. It
// registers the process's end with t.Cleanup, also when it fails.
func start(t testing.TB, bin, root string, cfg bucket.S3Config) (endpoint string, err error) {
	t.Helper()
	port, err := testutil.FreePort()
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + port
	cmd := exec.Command(bin,
		"--access", cfg.AccessKeyID,
		"--secret", cfg.SecretAccessKey,
		"--region", Region,
		"--port", addr,
		"--health", healthPath,
		"--quiet",
		"posix", root,
	)
	// The keys are also passed as flags; keep the environment from overriding them.
	cmd.Env = filterEnv(os.Environ(), "ROOT_ACCESS_KEY", "ROOT_SECRET", "VGW_")
	proc, err := testutil.StartProcess(t, Binary, cmd)
	if err != nil {
		return "", err
	}
	return addr, proc.WaitReady(startTimeout, testutil.GetOK("http://"+addr+healthPath))
}

// createBucket sends a SigV4-signed CreateBucket request, so the server sets up the
// bucket's metadata as for any client (a bare directory in the posix root lacks it).
func createBucket(cfg bucket.S3Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+cfg.Endpoint+"/"+cfg.Bucket, http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	creds := aws.Credentials{AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, emptySHA256, "s3", Region, time.Now()); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("status %s: %s", resp.Status, body)
	}
	return nil
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func filterEnv(env []string, prefixes ...string) []string {
	out := env[:0:0]
next:
	for _, kv := range env {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
