package remotewrite

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors returned by this package. Match them with errors.Is; the returned
// errors wrap them with details fit to send back to the client. The
// suggested HTTP status is in each comment: all are client errors, so a
// sender must not retry the request unchanged.
var (
	// ErrUnsupportedContentType: the Content-Type is not one of the
	// accepted ones (415 Unsupported Media Type). The message lists them.
	ErrUnsupportedContentType = errors.New("unsupported content type")
	// ErrUnsupportedContentEncoding: the Content-Encoding is neither
	// "snappy" nor empty (415 Unsupported Media Type).
	ErrUnsupportedContentEncoding = errors.New("unsupported content encoding")
	// ErrBodyTooLarge: the snappy header announces a decoded body larger
	// than the configured cap; nothing was allocated for it (413 Content
	// Too Large).
	ErrBodyTooLarge = errors.New("decoded request body too large")
	// ErrInvalidSnappy: the body is not a valid snappy block (400).
	ErrInvalidSnappy = errors.New("invalid snappy-compressed body")
	// ErrMalformedRequest: the decompressed body is not a valid encoding
	// of the request message (400).
	ErrMalformedRequest = errors.New("malformed remote write request")
	// ErrInvalidSymbolRef: a v2 reference lies outside the symbols table,
	// or a labels_refs list has an odd length (400).
	ErrInvalidSymbolRef = errors.New("invalid symbol reference")
	// ErrDuplicateLabelName: a series or exemplar repeats a label name;
	// returned by ToLabels (400).
	ErrDuplicateLabelName = errors.New("duplicate label name")
)

// Wire-level causes. Tests match on them; callers need only the sentinels
// above.
var (
	errUnexpectedEOF  = errors.New("unexpected end of data")
	errVarintOverflow = errors.New("varint overflows 64 bits")
	errInvalidLength  = errors.New("invalid length")
	// errPackedOverrun marks a packed repeated field whose elements do not
	// end exactly at the field's end. gogo accepts some of these by reading
	// past the field; we reject them all (see doc.go).
	errPackedOverrun = errors.New("packed field elements overrun the field length")
)

// decodeError describes where decoding failed. The path is collected while
// unwinding, so the success path pays nothing for it.
type decodeError struct {
	kind   error // ErrMalformedRequest or ErrInvalidSymbolRef.
	cause  error // A wire-level cause, or nil.
	msg    string
	offset int      // Byte offset in the decoded body.
	path   []string // Innermost first.
}

func (e *decodeError) Error() string {
	var b strings.Builder
	b.WriteString(e.kind.Error())
	b.WriteString(": ")
	for i := len(e.path) - 1; i >= 0; i-- {
		b.WriteString(e.path[i])
		if i > 0 {
			b.WriteByte('.')
		}
	}
	if len(e.path) > 0 {
		b.WriteString(": ")
	}
	switch {
	case e.cause == nil:
		b.WriteString(e.msg)
	case e.msg == "":
		b.WriteString(e.cause.Error())
	default:
		b.WriteString(e.msg)
		b.WriteString(" (")
		b.WriteString(e.cause.Error())
		b.WriteString(")")
	}
	b.WriteString(" at offset ")
	b.WriteString(strconv.Itoa(e.offset))
	return b.String()
}

func (e *decodeError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func malformed(off int, cause error, format string, args ...any) error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &decodeError{kind: ErrMalformedRequest, cause: cause, msg: msg, offset: off}
}

func badRef(off int, format string, args ...any) error {
	return &decodeError{kind: ErrInvalidSymbolRef, msg: fmt.Sprintf(format, args...), offset: off}
}

// inField adds a path element such as "timeseries[3]" to a decodeError.
func inField(err error, name string, index int) error {
	var de *decodeError
	if errors.As(err, &de) {
		if index >= 0 {
			name += "[" + strconv.Itoa(index) + "]"
		}
		de.path = append(de.path, name)
	}
	return err
}
