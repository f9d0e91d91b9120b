// Package cwlogs is a CloudWatch Logs endpoint for tests: no emulator of the service is
// reachable here, so every request is checked against botocore's own model of the API
// (the AWS CLI's, data/logs/2014-03-28/service-2.json): the operation's input shape,
// required and unknown members, lengths, patterns, ranges, and PutLogEvents' batch
// rules (1,048,576 bytes counting 26 per event, 10,000 events, 24 hours, time order).
// It serves DescribeLogGroups, CreateLogStream and PutLogEvents over the log groups it
// is given, and records the events.
package cwlogs

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// Model is botocore's model of the CloudWatch Logs API.
type Model struct {
	Metadata struct {
		TargetPrefix string `json:"targetPrefix"`
	} `json:"metadata"`
	Operations map[string]struct {
		Input struct {
			Shape string `json:"shape"`
		} `json:"input"`
	} `json:"operations"`
	Shapes map[string]Shape `json:"shapes"`
}

// Shape is a botocore shape.
type Shape struct {
	Type     string              `json:"type"`
	Required []string            `json:"required"`
	Members  map[string]MemberOf `json:"members"`
	Member   *MemberOf           `json:"member"`
	Value    *MemberOf           `json:"value"`
	Min      *float64            `json:"min"`
	Max      *float64            `json:"max"`
	Pattern  string              `json:"pattern"`
	Enum     []string            `json:"enum"`
}

// MemberOf names a member's shape.
type MemberOf struct {
	Shape string `json:"shape"`
}

// LoadModel reads botocore's CloudWatch Logs model, found through python3's botocore
// (installed with the AWS CLI). It skips the test when there is none, and fails it
// under CI=true.
func LoadModel(t testing.TB) *Model {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import botocore, os; print(os.path.dirname(botocore.__file__))").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("botocore (with the AWS CLI) is needed for its CloudWatch Logs model: %v", err)
		}
		t.Skipf("botocore is not installed (it comes with the AWS CLI): skipping; %v", err)
	}
	base := filepath.Join(strings.TrimSpace(string(out)), "data", "logs", "2014-03-28", "service-2.json")
	var r io.Reader
	if f, err := os.Open(base); err == nil {
		defer f.Close()
		r = f
	} else {
		f, err := os.Open(base + ".gz")
		if err != nil {
			t.Fatalf("botocore's CloudWatch Logs model: %v", err)
		}
		defer f.Close()
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = gz
	}
	var m Model
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		t.Fatalf("botocore's CloudWatch Logs model: %v", err)
	}
	return &m
}

// Validate checks a JSON value against a shape and returns what is wrong.
func (m *Model) Validate(v any, shape, path string) []string {
	s, ok := m.Shapes[shape]
	if !ok {
		return []string{fmt.Sprintf("%s: unknown shape %s", path, shape)}
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	bounds := func(n float64) {
		if s.Min != nil && n < *s.Min {
			bad("%v below the minimum %v", n, *s.Min)
		}
		if s.Max != nil && n > *s.Max {
			bad("%v above the maximum %v", n, *s.Max)
		}
	}
	switch s.Type {
	case "structure":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("want an object, have %T", v)
			return errs
		}
		for _, r := range s.Required {
			if _, ok := obj[r]; !ok {
				bad("required member %q missing", r)
			}
		}
		for k, mv := range obj {
			mem, ok := s.Members[k]
			if !ok {
				bad("unknown member %q", k)
				continue
			}
			errs = append(errs, m.Validate(mv, mem.Shape, path+"."+k)...)
		}
	case "list":
		arr, ok := v.([]any)
		if !ok {
			bad("want a list, have %T", v)
			return errs
		}
		bounds(float64(len(arr)))
		for i, e := range arr {
			errs = append(errs, m.Validate(e, s.Member.Shape, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case "map":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("want a map, have %T", v)
			return errs
		}
		for k, e := range obj {
			errs = append(errs, m.Validate(e, s.Value.Shape, path+"."+k)...)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			bad("want a string, have %T", v)
			return errs
		}
		bounds(float64(utf8.RuneCountInString(str)))
		if len(s.Enum) > 0 && !slices.Contains(s.Enum, str) {
			bad("%q is not one of %v", str, s.Enum)
		}
		if s.Pattern != "" {
			// botocore's patterns are Java's; those Go cannot compile are not checked.
			if re, err := regexp.Compile("^(?:" + s.Pattern + ")$"); err == nil && !re.MatchString(str) {
				bad("%q does not match %s", str, s.Pattern)
			}
		}
	case "long", "integer", "timestamp", "double", "float":
		n, ok := v.(json.Number)
		if !ok {
			bad("want a number, have %T", v)
			return errs
		}
		f, err := n.Float64()
		if err != nil {
			bad("%v", err)
			return errs
		}
		if (s.Type == "long" || s.Type == "integer") && strings.ContainsAny(n.String(), ".eE") {
			bad("%s is not an integer", n)
		}
		bounds(f)
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("want a boolean, have %T", v)
		}
	case "blob":
		if _, ok := v.(string); !ok {
			bad("want a base64 string, have %T", v)
		}
	}
	return errs
}

// Event is one event received.
type Event struct {
	Group, Stream string
	Timestamp     int64
	Message       string
}

// Server is the endpoint.
type Server struct {
	*httptest.Server
	model *Model
	t     testing.TB

	mu       sync.Mutex
	groups   map[string]map[string]bool // log group → streams
	events   []Event
	puts     int
	failNext int
	invalid  []string
}

// New serves a CloudWatch Logs endpoint with the given log groups (by name).
func New(t testing.TB, model *Model, groups ...string) *Server {
	s := &Server{model: model, t: t, groups: map[string]map[string]bool{}}
	for _, g := range groups {
		s.groups[g] = map[string]bool{}
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// FailNext makes the next n requests answer 503.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	s.failNext = n
	s.mu.Unlock()
}

// Events returns the events received so far.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// Puts is the number of PutLogEvents calls accepted.
func (s *Server) Puts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts
}

// Invalid lists what was wrong with the requests received; tests fail on any.
func (s *Server) Invalid() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.invalid)
}

func (s *Server) reply(w http.ResponseWriter, status int, errType, msg string, body any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if errType != "" {
		w.Header().Set("X-Amzn-ErrorType", errType)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": errType, "message": msg})
		return
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		s.reply(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "try again", nil)
		return
	}
	invalid := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		s.invalid = append(s.invalid, msg)
		s.reply(w, http.StatusBadRequest, "InvalidParameterException", msg, nil)
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		invalid("request not signed with SigV4")
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), s.model.Metadata.TargetPrefix+".")
	spec, known := s.model.Operations[op]
	if !ok || !known {
		invalid("unknown X-Amz-Target %q", r.Header.Get("X-Amz-Target"))
		return
	}
	raw, _ := io.ReadAll(r.Body)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var in map[string]any
	if err := dec.Decode(&in); err != nil {
		invalid("%s: body is not JSON: %v", op, err)
		return
	}
	if errs := s.model.Validate(in, spec.Input.Shape, op); len(errs) > 0 {
		invalid("%s", strings.Join(errs, "; "))
		return
	}
	switch op {
	case "DescribeLogGroups":
		prefix, _ := in["logGroupNamePrefix"].(string)
		var out []map[string]any
		for g := range s.groups {
			if strings.HasPrefix(g, prefix) {
				out = append(out, map[string]any{"logGroupName": g, "arn": "arn:aws:logs:us-east-1:000000000000:log-group:" + g + ":*"})
			}
		}
		s.reply(w, http.StatusOK, "", "", map[string]any{"logGroups": out})
	case "CreateLogStream":
		g, st := in["logGroupName"].(string), in["logStreamName"].(string)
		streams, ok := s.groups[g]
		switch {
		case !ok:
			s.reply(w, http.StatusBadRequest, "ResourceNotFoundException", "The specified log group does not exist.", nil)
		case streams[st]:
			s.reply(w, http.StatusBadRequest, "ResourceAlreadyExistsException", "The specified log stream already exists.", nil)
		default:
			streams[st] = true
			s.reply(w, http.StatusOK, "", "", map[string]any{})
		}
	case "PutLogEvents":
		g, st := in["logGroupName"].(string), in["logStreamName"].(string)
		if streams, ok := s.groups[g]; !ok || !streams[st] {
			s.reply(w, http.StatusBadRequest, "ResourceNotFoundException", "The specified log stream does not exist.", nil)
			return
		}
		events := in["logEvents"].([]any)
		size, prev, first := 0, int64(-1), int64(-1)
		var got []Event
		for i, e := range events {
			ev := e.(map[string]any)
			ts, _ := ev["timestamp"].(json.Number).Int64()
			msg := ev["message"].(string)
			size += len(msg) + 26
			if ts < prev {
				invalid("PutLogEvents: event %d is older than the one before it (%d < %d)", i, ts, prev)
				return
			}
			if first < 0 {
				first = ts
			}
			if ts-first > 24*3600*1000 {
				invalid("PutLogEvents: the batch spans more than 24 hours")
				return
			}
			prev = ts
			got = append(got, Event{Group: g, Stream: st, Timestamp: ts, Message: msg})
		}
		if size > 1_048_576 {
			invalid("PutLogEvents: batch of %d bytes, more than 1,048,576", size)
			return
		}
		s.events = append(s.events, got...)
		s.puts++
		s.reply(w, http.StatusOK, "", "", map[string]any{"nextSequenceToken": "1"})
	default:
		invalid("operation %s not served by this endpoint", op)
	}
}
