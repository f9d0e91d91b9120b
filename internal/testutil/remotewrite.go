package testutil

import (
	"testing"

	"github.com/prometheus/prometheus/prompb"

	"github.com/stratametrics/strata/internal/remotewrite"
)

// DecodeV1 returns wr as the distributor decodes it from a remote write 1.0 body: the
// form the distributor, the ingester and the ingest log take requests in.
func DecodeV1(t testing.TB, wr *prompb.WriteRequest) *remotewrite.Request {
	t.Helper()
	b, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var r remotewrite.Request
	if err := r.Unmarshal(remotewrite.V1, b); err != nil {
		t.Fatal(err)
	}
	return &r
}
