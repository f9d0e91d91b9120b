// Package remotewrite decodes Prometheus remote write 1.0 and 2.0 requests
// without reflection and, in steady state, without allocating.
//
// Start from Decoder: the distributor makes one per process with NewDecoder and
// calls DecodeBody once per HTTP request. DecodeBody negotiates the protocol
// from the Content-Type and Content-Encoding headers, checks the snappy
// header against a size cap before allocating, decompresses into a pooled
// buffer and decodes it into a pooled Request. The caller must call
// Request.Release when it is done with the request.
//
//	body ─▶ Decoder.DecodeBody                      *Request ─▶ for each Series s:
//	          ParseContentType   → V1 or V2                      key = s.AppendKey(key[:0])
//	          snappy.DecodedLen  ≤ cap, else 413                 known key: append samples by ref
//	          snappy.Decode      → pooled buffer                 new key:   s.ToLabels(&b), cache ref
//	          Request.Unmarshal  → validated, zero-copy ─────▶ req.Release()
//
// Both protocol versions decode into the same Request/Series shape, so the
// ingestion path is written once. Decoding validates everything but does
// not materialise series labels: a Series remembers where its labels are,
// and Series.AppendKey gives a known series its cache key (for v1 a copy of
// the sender's bytes) without building labels at all; Series.ToLabels
// builds a sorted labels.Labels for a new one.
//
// Everything a Request hands out (label and symbol bytes, metadata
// strings, and the slices of samples, exemplars and histograms) aliases
// the request's decompressed buffer or its reused arenas, and stays valid
// only until Release (or the next Unmarshal/Reset of the same Request).
// Copy what must outlive the request; Series.ToLabels,
// Histogram.ToIntHistogram/ToFloatHistogram and Exemplar.ToExemplar
// already return copies.
//
// Errors are sentinels to map once at the HTTP edge: ErrUnsupportedContentType
// and ErrUnsupportedContentEncoding (415), ErrBodyTooLarge (413),
// ErrInvalidSnappy, ErrMalformedRequest and ErrInvalidSymbolRef (400),
// ErrDuplicateLabelName (400, from ToLabels).
//
// Where this package deliberately differs from Prometheus' gogo-generated
// decoder and write handler (v0.316.0):
//
//   - A packed repeated field whose last element runs past the field's
//     declared length is rejected; gogo reads on into the following bytes.
//   - A v2 symbol reference outside the symbols table, or an odd number of
//     label references, rejects the whole request at decode time; Prometheus
//     drops only that series and writes the rest (a partial write).
//   - Content-Type parameters tolerate whitespace and are matched
//     case-insensitively ("application/x-protobuf; proto=io.prometheus.write.v2.Request"
//     is v2); Prometheus ignores a parameter with a leading space and falls
//     back to v1. Content-Encoding is matched case-insensitively.
//   - Unknown fields are skipped, not kept.
//
// Memory: a decoded request takes about as much memory as gogo's would
// before labels (a Series is 128 bytes and an empty series costs two input
// bytes), and none per label; bound it with the decoded size cap.
package remotewrite
