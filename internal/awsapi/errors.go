// Package awsapi holds the wire conventions Strata shares with AWS JSON services:
// error shapes, request ids, JSON bodies and timestamps. Handlers return *Error values
// and the edge writes them once, so every route answers AWS-shaped errors.
package awsapi

import (
	"errors"
	"fmt"
	"net/http"
)

// Error type names, as sent in the x-amzn-ErrorType header. SDKs map them to typed errors.
const (
	ValidationException           = "ValidationException"
	AccessDeniedException         = "AccessDeniedException"
	ResourceNotFoundException     = "ResourceNotFoundException"
	ConflictException             = "ConflictException"
	ThrottlingException           = "ThrottlingException"
	ServiceQuotaExceededException = "ServiceQuotaExceededException"
	InternalServerException       = "InternalServerException"
	UnknownOperationException     = "UnknownOperationException"
)

// Validation reasons of AMP's ValidationException.
const (
	ReasonUnknownOperation      = "UNKNOWN_OPERATION"
	ReasonCannotParse           = "CANNOT_PARSE"
	ReasonFieldValidationFailed = "FIELD_VALIDATION_FAILED"
	ReasonOther                 = "OTHER"
)

// Field names one invalid input field of a ValidationException.
type Field struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

// Error is an AWS-shaped error: an HTTP status, a type name and a JSON body.
// The optional members mirror the model's exception shapes; empty ones are omitted.
type Error struct {
	Status       int     `json:"-"`
	Type         string  `json:"-"`
	Message      string  `json:"message"`
	Reason       string  `json:"reason,omitempty"`
	FieldList    []Field `json:"fieldList,omitempty"`
	ResourceID   string  `json:"resourceId,omitempty"`
	ResourceType string  `json:"resourceType,omitempty"`
	ServiceCode  string  `json:"serviceCode,omitempty"`
	QuotaCode    string  `json:"quotaCode,omitempty"`
	// RetryAfterSeconds, when positive, is sent as the Retry-After header.
	RetryAfterSeconds int `json:"-"`
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// Validation reports one invalid field; the message names it.
func Validation(field, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{
		Status:    http.StatusBadRequest,
		Type:      ValidationException,
		Message:   msg,
		Reason:    ReasonFieldValidationFailed,
		FieldList: []Field{{Name: field, Message: msg}},
	}
}

// CannotParse reports a body that is not the JSON the operation takes.
func CannotParse(format string, args ...any) *Error {
	return &Error{
		Status:  http.StatusBadRequest,
		Type:    ValidationException,
		Message: fmt.Sprintf(format, args...),
		Reason:  ReasonCannotParse,
	}
}

// NotFound reports a resource that does not exist.
func NotFound(resourceType, resourceID, format string, args ...any) *Error {
	return &Error{
		Status:       http.StatusNotFound,
		Type:         ResourceNotFoundException,
		Message:      fmt.Sprintf(format, args...),
		ResourceID:   resourceID,
		ResourceType: resourceType,
	}
}

// Conflict reports a request that the resource's current state does not allow.
func Conflict(resourceType, resourceID, format string, args ...any) *Error {
	return &Error{
		Status:       http.StatusConflict,
		Type:         ConflictException,
		Message:      fmt.Sprintf(format, args...),
		ResourceID:   resourceID,
		ResourceType: resourceType,
	}
}

// QuotaExceeded reports a service quota that a create would exceed.
func QuotaExceeded(resourceType, resourceID, quotaCode, format string, args ...any) *Error {
	return &Error{
		Status:       http.StatusPaymentRequired,
		Type:         ServiceQuotaExceededException,
		Message:      fmt.Sprintf(format, args...),
		ResourceID:   resourceID,
		ResourceType: resourceType,
		ServiceCode:  "AmazonPrometheus",
		QuotaCode:    quotaCode,
	}
}

// UnknownOperation reports a method and path that match no operation.
func UnknownOperation(method, path string) *Error {
	return &Error{
		Status:  http.StatusNotFound,
		Type:    UnknownOperationException,
		Message: fmt.Sprintf("no operation matches %s %s", method, path),
	}
}

// Internal hides an unexpected failure behind a generic message; the cause is logged, not sent.
func Internal() *Error {
	return &Error{
		Status:  http.StatusInternalServerError,
		Type:    InternalServerException,
		Message: "internal error; the request was not applied, retry it",
	}
}

// As returns err as an *Error, or nil when it is not one.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
