package awsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// RequestIDHeader carries the id of each request in responses, as AWS services do.
const RequestIDHeader = "x-amzn-RequestId"

// WriteJSON writes v as the JSON body with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		WriteError(w, Internal())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteError writes e in the AWS JSON error shape: status, x-amzn-ErrorType and {"message": ...}.
func WriteError(w http.ResponseWriter, e *Error) {
	body, _ := json.Marshal(e)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("x-amzn-ErrorType", e.Type)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if e.RetryAfterSeconds > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds))
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

// ReadJSON decodes the request body into v. The body is limited to maxBytes; an empty body
// decodes as {} because AWS SDKs omit bodies whose members are all absent.
func ReadJSON(r *http.Request, maxBytes int64, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		return CannotParse("reading request body: %v", err)
	}
	if int64(len(body)) > maxBytes {
		return &Error{
			Status:  http.StatusBadRequest,
			Type:    ValidationException,
			Message: "request body exceeds the limit of " + strconv.FormatInt(maxBytes, 10) + " bytes",
			Reason:  ReasonOther,
		}
	}
	return DecodeJSON(body, v)
}

// DecodeJSON decodes a request body read whole, as ReadJSON does: empty (or blank) is
// an empty object; otherwise it must be exactly one JSON value, with nothing but white
// space after it. Authorization reads a body with it too (a namespace's name, request
// tags), so that it sees exactly what the handler will act on.
func DecodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return Validation(typeErr.Field, "%s must be of type %s", typeErr.Field, typeErr.Type)
		}
		return CannotParse("request body is not valid JSON: %v", err)
	}
	// Anything after the value, a stray "}" included (which More does not see), makes
	// the body invalid.
	if _, err := dec.Token(); err != io.EOF {
		return CannotParse("request body holds more than one JSON value")
	}
	return nil
}

// Timestamp is a time that encodes as the epoch seconds (with milliseconds) of AWS REST-JSON.
type Timestamp time.Time

// MarshalJSON encodes epoch seconds, e.g. 1700000000.123.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}
