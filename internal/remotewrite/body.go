package remotewrite

import (
	"fmt"
	"strings"
	"sync"

	"github.com/golang/snappy"
)

// Content negotiation values of the remote write 2.0 specification.
const (
	// ContentTypeV1 and ContentTypeV2 are the canonical Content-Type
	// values; a bare "application/x-protobuf" also means v1.
	ContentTypeV1 = mediaType + ";proto=" + protoV1
	ContentTypeV2 = mediaType + ";proto=" + protoV2
	// ContentEncodingSnappy is the only accepted Content-Encoding; an
	// empty one is treated as snappy too, as Prometheus does.
	ContentEncodingSnappy = "snappy"

	mediaType = "application/x-protobuf"
	protoV1   = "prometheus.WriteRequest"
	protoV2   = "io.prometheus.write.v2.Request"

	acceptedContentTypes = mediaType + ", " + ContentTypeV1 + ", " + ContentTypeV2
)

// DefaultMaxDecodedSize is the default cap on a decompressed body: 32 MiB,
// Prometheus' own limit.
const DefaultMaxDecodedSize = 32 << 20

// Options configures a Decoder.
type Options struct {
	// MaxDecodedSize caps the decompressed size of a request body in
	// bytes, as announced by the snappy header and checked before
	// allocating. Zero means DefaultMaxDecodedSize.
	MaxDecodedSize int
}

// Decoder decodes remote write request bodies into pooled Requests. It is
// safe for concurrent use; make one and share it.
type Decoder struct {
	maxDecodedSize int
	pool           sync.Pool // Of *Request; each remembers this pool.
}

// NewDecoder returns a Decoder.
func NewDecoder(opts Options) *Decoder {
	d := &Decoder{maxDecodedSize: opts.MaxDecodedSize}
	if d.maxDecodedSize <= 0 {
		d.maxDecodedSize = DefaultMaxDecodedSize
	}
	return d
}

// MaxDecodedSize returns the cap on decompressed bodies in effect.
func (d *Decoder) MaxDecodedSize() int { return d.maxDecodedSize }

func (d *Decoder) get() *Request {
	if r, ok := d.pool.Get().(*Request); ok {
		return r
	}
	return &Request{pool: &d.pool}
}

// DecodeBody negotiates the protocol version from the Content-Type and
// Content-Encoding header values, decompresses body into a pooled buffer and
// decodes it. body is not retained. The caller owns the returned Request
// and must Release it; its contents alias the pooled buffer (see Request).
// DecodeBody caps the decompressed size; capping the compressed body read
// from the connection (http.MaxBytesReader) is the caller's job.
//
// Errors wrap ErrUnsupportedContentType, ErrUnsupportedContentEncoding,
// ErrBodyTooLarge, ErrInvalidSnappy, ErrMalformedRequest or
// ErrInvalidSymbolRef; on error no Request is returned.
func (d *Decoder) DecodeBody(contentType, contentEncoding string, body []byte) (*Request, error) {
	v, err := ParseContentType(contentType)
	if err != nil {
		return nil, err
	}
	if err := checkContentEncoding(contentEncoding); err != nil {
		return nil, err
	}
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("%w: reading the decoded length: %w", ErrInvalidSnappy, err)
	}
	if n > d.maxDecodedSize {
		return nil, fmt.Errorf("%w: %d bytes announced, the limit is %d", ErrBodyTooLarge, n, d.maxDecodedSize)
	}
	r := d.get()
	if cap(r.buf) < n {
		// Grow geometrically so a slowly growing request size does not
		// reallocate every time, but never past the cap.
		r.buf = make([]byte, min(max(n, 2*cap(r.buf)), d.maxDecodedSize))
	}
	data, err := snappy.Decode(r.buf[:cap(r.buf)], body)
	if err != nil {
		r.Release()
		return nil, fmt.Errorf("%w: %w", ErrInvalidSnappy, err)
	}
	if err := r.Unmarshal(v, data); err != nil {
		r.Release()
		return nil, fmt.Errorf("decoding %s: %w", v, err)
	}
	return r, nil
}

// Decode decodes data, an uncompressed message of version v, into a pooled
// Request that aliases data: data must not change until the Request is
// released. Errors are as for Request.Unmarshal.
func (d *Decoder) Decode(v Version, data []byte) (*Request, error) {
	r := d.get()
	if err := r.Unmarshal(v, data); err != nil {
		r.Release()
		return nil, err
	}
	return r, nil
}

// ParseContentType returns the protocol version a Content-Type header value
// asks for. As the remote write 2.0 specification says, an empty value or
// a bare application/x-protobuf means v1. Other parameters are ignored.
// Unlike Prometheus, it allows whitespace around ";" and "=" and matches
// the media type and parameter names case-insensitively (RFC 9110).
func ParseContentType(contentType string) (Version, error) {
	ct := strings.TrimSpace(contentType)
	if ct == "" {
		return V1, nil
	}
	media, params, _ := strings.Cut(ct, ";")
	if !strings.EqualFold(strings.TrimSpace(media), mediaType) {
		return 0, fmt.Errorf("%w %q; accepted: %s", ErrUnsupportedContentType, contentType, acceptedContentTypes)
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name, value, ok := strings.Cut(p, "=")
		if !ok {
			return 0, fmt.Errorf("%w %q: parameter %q is not name=value; accepted: %s", ErrUnsupportedContentType, contentType, p, acceptedContentTypes)
		}
		if !strings.EqualFold(strings.TrimSpace(name), "proto") {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		// Like Prometheus, the first proto parameter decides.
		switch value {
		case protoV1:
			return V1, nil
		case protoV2:
			return V2, nil
		default:
			return 0, fmt.Errorf("%w %q: unknown proto %q; accepted: %s", ErrUnsupportedContentType, contentType, value, acceptedContentTypes)
		}
	}
	return V1, nil
}

// checkContentEncoding accepts "snappy" and, like Prometheus, no encoding,
// which it also treats as snappy.
func checkContentEncoding(enc string) error {
	enc = strings.TrimSpace(enc)
	if enc == "" || strings.EqualFold(enc, ContentEncodingSnappy) {
		return nil
	}
	return fmt.Errorf("%w %q; only %q is accepted", ErrUnsupportedContentEncoding, enc, ContentEncodingSnappy)
}
