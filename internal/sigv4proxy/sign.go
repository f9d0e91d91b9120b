package sigv4proxy

import (
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// signingTransport signs each request with SigV4 (header form) and sends it
// with next. It signs a clone; the caller's request is not modified.
type signingTransport struct {
	next    http.RoundTripper
	creds   aws.CredentialsProvider // an aws.CredentialsCache: Retrieve is cheap until expiry
	signer  *v4.Signer
	region  string
	service string
	now     func() time.Time
}

func (t *signingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	hash := emptySHA256
	if o := outboundFrom(ctx); o != nil {
		hash = o.payloadHash
	}
	creds, err := t.creds.Retrieve(ctx)
	if err != nil {
		closeBody(req)
		return nil, &signError{err}
	}
	out := req.Clone(ctx)
	rawQuery := out.URL.RawQuery
	out.Header.Set("X-Amz-Content-Sha256", hash)
	if err := t.signer.SignHTTP(ctx, creds, out, hash, t.service, t.region, t.now()); err != nil {
		closeBody(req)
		return nil, &signError{err}
	}
	// SignHTTP rewrites RawQuery into its canonical form (sorted, %20 for
	// spaces). The signature is over the decoded parameters, so the
	// client's own encoding verifies just as well; send that.
	out.URL.RawQuery = rawQuery
	return t.next.RoundTrip(out)
}

// closeBody honours the RoundTripper contract: the body is closed, even on
// errors.
func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// NewTransport signs requests that have no body (queries, reads) with SigV4 for service
// in region and sends them with next: a Go client of a workspace's query API. creds
// should be cached (aws.Config's Credentials are).
func NewTransport(next http.RoundTripper, creds aws.CredentialsProvider, region, service string) http.RoundTripper {
	return &signingTransport{next: next, creds: creds, signer: v4.NewSigner(), region: region, service: service, now: time.Now}
}
