package ingest

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/stratametrics/strata/internal/remotewrite"
)

// The wire forms are protobuf messages, written by hand as the remote write body is:
//
//	Batch  { 1: string workspace, 2: uint32 version, 3: string drop_label, 4: bytes body }
//	Answer { 1: uint64 samples, 2: uint64 histograms, 3: uint64 exemplars,
//	         4: string invalid, 5: string limited, 6: string limited_quota,
//	         7: ErrorCode error, 8: string error_message }
//
// body is the request as remotewrite.Request.AppendMarshal writes it.

// ErrMalformed is returned for bytes that are not a batch or an answer.
var ErrMalformed = errors.New("malformed ingest message")

// AppendBatch appends the wire form of a batch to dst.
func AppendBatch(dst []byte, workspace string, req *remotewrite.Request, opts Options) []byte {
	return appendBatch(dst, workspace, req, opts, func(dst []byte) []byte { return req.AppendMarshal(dst) })
}

// AppendBatchSeries appends the wire form of a part of a batch to dst: the series of req
// at the given indexes (none when empty), with v1's request-level metadata when
// withMetadata is set.
func AppendBatchSeries(dst []byte, workspace string, req *remotewrite.Request, opts Options, series []int, withMetadata bool) []byte {
	return appendBatch(dst, workspace, req, opts, func(dst []byte) []byte { return req.AppendMarshalSeries(dst, series, withMetadata) })
}

func appendBatch(dst []byte, workspace string, req *remotewrite.Request, opts Options, body func([]byte) []byte) []byte {
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, workspace)
	dst = protowire.AppendTag(dst, 2, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(req.Version))
	if opts.DropLabel != "" {
		dst = protowire.AppendTag(dst, 3, protowire.BytesType)
		dst = protowire.AppendString(dst, opts.DropLabel)
	}
	// The body goes last and is encoded straight into dst after room for its length, a
	// varint padded to lengthBytes (decoders take a varint's redundant continuation
	// bytes), so the body is written once and never moved.
	dst = protowire.AppendTag(dst, 4, protowire.BytesType)
	start := len(dst)
	dst = append(dst, make([]byte, lengthBytes)...)
	dst = body(dst)
	n := len(dst) - start - lengthBytes
	putPaddedVarint(dst[start:start+lengthBytes], uint64(n))
	return dst
}

// lengthBytes is the size of the padded length of a batch's body: up to 32 GiB.
const lengthBytes = 5

// putPaddedVarint writes v as a varint of exactly len(b) bytes.
func putPaddedVarint(b []byte, v uint64) {
	for i := range b {
		c := byte(v & 0x7f)
		v >>= 7
		if i < len(b)-1 {
			c |= 0x80
		}
		b[i] = c
	}
}

// ParseBatch decodes a batch into req and returns its workspace and
// options. req aliases data until it is released or decoded into again.
func ParseBatch(req *remotewrite.Request, data []byte) (workspace string, opts Options, err error) {
	var (
		version uint64
		body    []byte
		hasBody bool
	)
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return "", Options{}, fmt.Errorf("%w: %v", ErrMalformed, protowire.ParseError(n))
		}
		data = data[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(data)
			workspace = string(v)
		case num == 2 && typ == protowire.VarintType:
			version, n = protowire.ConsumeVarint(data)
		case num == 3 && typ == protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(data)
			opts.DropLabel = string(v)
		case num == 4 && typ == protowire.BytesType:
			body, n = protowire.ConsumeBytes(data)
			hasBody = true
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return "", Options{}, fmt.Errorf("%w: field %d: %v", ErrMalformed, num, protowire.ParseError(n))
		}
		data = data[n:]
	}
	if workspace == "" || !hasBody {
		return "", Options{}, fmt.Errorf("%w: a batch needs a workspace and a body", ErrMalformed)
	}
	if err := req.Unmarshal(remotewrite.Version(version), body); err != nil {
		return "", Options{}, fmt.Errorf("batch of workspace %s: %w", workspace, err)
	}
	return workspace, opts, nil
}

// Error codes of an answer.
const (
	codeNone uint64 = iota
	codeWorkspaceDeleted
	codeStopped
	codeOther
)

// AppendAnswer appends the wire form of Push's answer (res, err) to dst.
func AppendAnswer(dst []byte, res Result, err error) []byte {
	dst = appendUint(dst, 1, uint64(res.Samples))
	dst = appendUint(dst, 2, uint64(res.Histograms))
	dst = appendUint(dst, 3, uint64(res.Exemplars))
	if res.Invalid != nil {
		dst = appendString(dst, 4, res.Invalid.Error())
	}
	if res.Limited != nil {
		dst = appendString(dst, 5, res.Limited.Error())
	}
	dst = appendString(dst, 6, res.LimitedQuota)
	if err != nil {
		code := codeOther
		switch {
		case errors.Is(err, ErrWorkspaceDeleted):
			code = codeWorkspaceDeleted
		case errors.Is(err, ErrStopped):
			code = codeStopped
		}
		dst = appendUint(dst, 7, code)
		dst = appendString(dst, 8, err.Error())
	}
	return dst
}

// ParseAnswer decodes Push's answer. The refusals come back as errors with the same
// messages; Push's error as one with its message, which wraps ErrWorkspaceDeleted or
// ErrStopped if it did. An answer that does not decode is an error wrapping
// ErrMalformed.
func ParseAnswer(data []byte) (Result, error) {
	var (
		res  Result
		code uint64
		msg  string
	)
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return Result{}, fmt.Errorf("%w: %v", ErrMalformed, protowire.ParseError(n))
		}
		data = data[n:]
		var (
			v uint64
			s []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(data)
		case protowire.BytesType:
			s, n = protowire.ConsumeBytes(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return Result{}, fmt.Errorf("%w: field %d: %v", ErrMalformed, num, protowire.ParseError(n))
		}
		data = data[n:]
		switch num {
		case 1:
			res.Samples = int(v)
		case 2:
			res.Histograms = int(v)
		case 3:
			res.Exemplars = int(v)
		case 4:
			res.Invalid = errors.New(string(s))
		case 5:
			res.Limited = errors.New(string(s))
		case 6:
			res.LimitedQuota = string(s)
		case 7:
			code = v
		case 8:
			msg = string(s)
		}
	}
	var err error
	switch code {
	case codeNone:
	case codeWorkspaceDeleted:
		err = remoteError{msg, ErrWorkspaceDeleted}
	case codeStopped:
		err = remoteError{msg, ErrStopped}
	default:
		err = remoteError{msg, nil}
	}
	return res, err
}

// remoteError is an error of the far side: its message, and the sentinel it wrapped.
type remoteError struct {
	msg  string
	kind error
}

func (e remoteError) Error() string { return e.msg }
func (e remoteError) Unwrap() error { return e.kind }

func appendUint(dst []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, v)
}

func appendString(dst []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendString(dst, s)
}
