package sts

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The STS wire format: the AWS query protocol, XML answers in the 2011-06-15
// namespace. Both SDKs need the <Op>Result wrapper; the Go SDK reads the request id
// from the x-amzn-RequestId header, botocore from the body, so both carry it.

const xmlns = "https://sts.amazonaws.com/doc/2011-06-15/"

// apiVersion is the only STS API version.
const apiVersion = "2011-06-15"

// Error is an STS error answer.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// STS error codes.
const (
	CodeAccessDenied               = "AccessDenied"
	CodeValidationError            = "ValidationError"
	CodeInvalidParameterValue      = "InvalidParameterValue"
	CodeMissingParameter           = "MissingParameter"
	CodeInvalidAction              = "InvalidAction"
	CodeMalformedPolicyDocument    = "MalformedPolicyDocument"
	CodeMissingAuthenticationToken = "MissingAuthenticationToken"
	CodeIncompleteSignature        = "IncompleteSignature"
	CodeSignatureDoesNotMatch      = "SignatureDoesNotMatch"
	CodeInvalidClientTokenID       = "InvalidClientTokenId"
	CodeExpiredToken               = "ExpiredToken"
	CodeInternalFailure            = "InternalFailure"
)

func accessDenied(format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeAccessDenied, Message: fmt.Sprintf(format, args...)}
}

func validationError(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeValidationError, Message: fmt.Sprintf(format, args...)}
}

type errorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Error"`
	RequestID string `xml:"RequestId"`
}

// requestIDHeader is set on every response by the HTTP edge.
const requestIDHeader = "x-amzn-RequestId"

func writeError(w http.ResponseWriter, e *Error) {
	var out errorResponse
	out.Xmlns = xmlns
	out.Error.Type = "Sender"
	if e.Status >= 500 {
		out.Error.Type = "Receiver"
	}
	out.Error.Code, out.Error.Message = e.Code, e.Message
	out.RequestID = w.Header().Get(requestIDHeader)
	writeXML(w, e.Status, &out)
}

type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

type credentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumedRoleUser struct {
	Arn           string `xml:"Arn"`
	AssumedRoleID string `xml:"AssumedRoleId"`
}

type assumeRoleResponse struct {
	XMLName xml.Name `xml:"AssumeRoleResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		SourceIdentity   string          `xml:"SourceIdentity,omitempty"`
		AssumedRoleUser  assumedRoleUser `xml:"AssumedRoleUser"`
		Credentials      credentials     `xml:"Credentials"`
		PackedPolicySize *int            `xml:"PackedPolicySize,omitempty"`
	} `xml:"AssumeRoleResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}

type assumeRoleWithWebIdentityResponse struct {
	XMLName xml.Name `xml:"AssumeRoleWithWebIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		SubjectFromWebIdentityToken string          `xml:"SubjectFromWebIdentityToken"`
		Audience                    string          `xml:"Audience"`
		AssumedRoleUser             assumedRoleUser `xml:"AssumedRoleUser"`
		Credentials                 credentials     `xml:"Credentials"`
		SourceIdentity              string          `xml:"SourceIdentity,omitempty"`
		Provider                    string          `xml:"Provider"`
		PackedPolicySize            *int            `xml:"PackedPolicySize,omitempty"`
	} `xml:"AssumeRoleWithWebIdentityResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}

type getCallerIdentityResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	} `xml:"GetCallerIdentityResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}

type getSessionTokenResponse struct {
	XMLName xml.Name `xml:"GetSessionTokenResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Credentials credentials `xml:"Credentials"`
	} `xml:"GetSessionTokenResult"`
	ResponseMetadata responseMetadata `xml:"ResponseMetadata"`
}

func writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`<ErrorResponse xmlns="` + xmlns + `"><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>encoding the answer failed</Message></Error></ErrorResponse>`)
	}
	body = append([]byte(xml.Header), body...)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// expiration is how STS spells a credential's expiry.
func expiration(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// violations collects the constraint violations of a request, worded as AWS's
// validation ("1 validation error detected: Value 'x' at 'roleSessionName' failed to
// satisfy constraint: Member must have length greater than or equal to 2").
type violations []string

func (v *violations) add(value *string, member, constraint string) {
	val := "null"
	if value != nil {
		s := *value
		if len(s) > 256 {
			s = s[:256] + "..."
		}
		val = "'" + s + "'"
	}
	*v = append(*v, "Value "+val+" at '"+member+"' failed to satisfy constraint: "+constraint)
}

func (v violations) err() *Error {
	switch len(v) {
	case 0:
		return nil
	case 1:
		return validationError("1 validation error detected: %s", v[0])
	}
	return validationError("%d validation errors detected: %s", len(v), strings.Join(v, "; "))
}
