package sigv4

import (
	"crypto/sha256"
	"net/http"
	"testing"
)

// benchRemoteWrite is a remote-write POST as Prometheus sends it to AMP
// with temporary (IRSA-style) credentials, signed by the Go SDK and read
// back as Go's server reads it.
func benchRemoteWrite(b *testing.B, bodySize int) (*Verifier, *http.Request, []byte) {
	body := make([]byte, bodySize)
	copy(body, remoteWriteBody())
	r := remoteWriteRequest(b, body)
	sdkSign(b, r, body, tempCreds(), "")
	sr, sbody := overWire(b, r)
	v := testVerifier(b, signTime)
	if _, err := v.Verify(sr, sbody); err != nil { // also warms the key cache
		b.Fatal(err)
	}
	return v, sr, sbody
}

// BenchmarkVerify is the hot path: header form, payload hash precomputed
// (the HTTP layer hashes while reading), signing key cached.
func BenchmarkVerify(b *testing.B) {
	v, r, body := benchRemoteWrite(b, 2048)
	sum := sha256.Sum256(body)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyHashed(r, sum); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyWithBody includes hashing a 64 KiB body.
func BenchmarkVerifyWithBody(b *testing.B) {
	v, r, body := benchRemoteWrite(b, 64<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := v.Verify(r, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyParallel(b *testing.B) {
	v, r, body := benchRemoteWrite(b, 2048)
	sum := sha256.Sum256(body)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.VerifyHashed(r, sum); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkVerifyPresigned(b *testing.B) {
	r := newRequest(b, http.MethodGet, "https://"+testHost+workspace+"/api/v1/query?query=sum%28rate%28up%5B5m%5D%29%29&time=1764066030", nil)
	pr, _ := overWire(b, sdkPresign(b, r, nil, tempCreds(), emptySHA256Hex, 15*60e9))
	v := testVerifier(b, signTime)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(pr, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyBadSignature is the cost of refusing a forged request.
func BenchmarkVerifyBadSignature(b *testing.B) {
	v, r, body := benchRemoteWrite(b, 2048)
	r.Header.Set("Content-Encoding", "gzip")
	sum := sha256.Sum256(body)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.VerifyHashed(r, sum); err == nil {
			b.Fatal("verified")
		}
	}
}
