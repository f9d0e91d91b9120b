// Package goaws starts a real SNS/SQS-compatible server for tests: goaws (MIT), one
// process per Start, on a free port, with one SNS topic and one SQS queue subscribed to
// it. Start from Start; read what was published to the topic with Server.Receive.
//
// The binary is not a module dependency: .ci/install-goaws.sh installs it into
// $(go env GOPATH)/bin. Without it, Start skips the test, except under CI=true, where a
// missing server must fail the run instead of silently testing less.
//
// goaws speaks the AWS query protocol (form-encoded Action=...), which SNS clients use;
// it does not check signatures. It binds every interface (0.0.0.0), not only loopback.
package goaws

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratametrics/strata/internal/testutil"
)

// Binary is the name of the server's executable.
const Binary = "goaws"

// The server's region, account, topic and queue.
const (
	Region    = "us-east-1"
	AccountID = "100010001000"
	Topic     = "alerts"
	Queue     = "alerts-queue"
)

const (
	startTimeout  = 30 * time.Second
	startAttempts = 3
)

// Server is a running goaws.
type Server struct {
	// URL is the endpoint of both SNS and SQS, http://127.0.0.1:<port>.
	URL string
	// TopicARN is the topic's ARN; QueueURL the URL of the queue subscribed to it.
	TopicARN string
	QueueURL string
}

// Start starts a server that lives until the test ends. The queue receives what is
// published to the topic in SNS's JSON envelope (not raw), so subject and message
// attributes can be read (see Notification).
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := testutil.FindBinary(Binary)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; .ci/install-goaws.sh installs it: %v", Binary, err)
		}
		t.Skipf("%s is not installed, skipping the SNS test; .ci/install-goaws.sh installs it: %v", Binary, err)
	}
	for attempt := 1; ; attempt++ {
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		if !errors.Is(err, testutil.ErrPortTaken) || attempt == startAttempts {
			t.Fatalf("starting %s: %v", Binary, err)
		}
		t.Logf("starting %s: %v; retrying on another port", Binary, err)
	}
}

const configTemplate = `Local:
  Host: 127.0.0.1
  Port: "%s"
  Region: %s
  AccountId: "%s"
  LogToFile: false
  QueueAttributeDefaults:
    VisibilityTimeout: 30
    ReceiveMessageWaitTimeSeconds: 0
  Queues:
    - Name: %s
  Topics:
    - Name: %s
      Subscriptions:
        - QueueName: %s
          Raw: false
`

func start(t testing.TB, bin string) (*Server, error) {
	t.Helper()
	port, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "goaws.yaml")
	cfg := fmt.Sprintf(configTemplate, port, Region, AccountID, Queue, Topic, Queue)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-config", cfgPath, "Local")
	cmd.Dir = dir // goaws looks for goaws.yaml under its working directory without -config
	proc, err := testutil.StartProcess(t, Binary, cmd)
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL:      "http://127.0.0.1:" + port,
		TopicARN: fmt.Sprintf("arn:aws:sns:%s:%s:%s", Region, AccountID, Topic),
	}
	s.QueueURL = s.URL + "/" + AccountID + "/" + Queue
	return s, proc.WaitReady(startTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := s.call(ctx, url.Values{"Action": {"ListTopics"}})
		return err
	})
}

// call posts a query-protocol request and returns the body of a 200 answer.
func (s *Server) call(ctx context.Context, form url.Values) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %s: %s", form.Get("Action"), resp.Status, body)
	}
	return body, nil
}

// Notification is a message published to the topic, as SNS delivers it to a queue.
type Notification struct {
	TopicArn          string
	Subject           string
	Message           string
	MessageAttributes map[string]struct {
		Type  string
		Value string
	}
}

// Receive returns the next message of the queue, deleting it; it long-polls the queue
// until ctx ends.
func (s *Server) Receive(ctx context.Context) (Notification, error) {
	for {
		body, err := s.call(ctx, url.Values{
			"Action":              {"ReceiveMessage"},
			"QueueUrl":            {s.QueueURL},
			"MaxNumberOfMessages": {"1"},
			// Long polling: the server answers as soon as a message arrives.
			"WaitTimeSeconds": {"1"},
		})
		if err != nil {
			return Notification{}, err
		}
		var out struct {
			Messages []struct {
				Body          string `xml:"Body"`
				ReceiptHandle string `xml:"ReceiptHandle"`
			} `xml:"ReceiveMessageResult>Message"`
		}
		if err := xml.Unmarshal(body, &out); err != nil {
			return Notification{}, fmt.Errorf("decoding ReceiveMessage: %w: %s", err, body)
		}
		if len(out.Messages) > 0 {
			m := out.Messages[0]
			if _, err := s.call(ctx, url.Values{"Action": {"DeleteMessage"}, "QueueUrl": {s.QueueURL}, "ReceiptHandle": {m.ReceiptHandle}}); err != nil {
				return Notification{}, err
			}
			var n Notification
			if err := json.Unmarshal([]byte(m.Body), &n); err != nil {
				return Notification{}, fmt.Errorf("decoding the SNS envelope: %w: %s", err, m.Body)
			}
			return n, nil
		}
		if err := ctx.Err(); err != nil {
			return Notification{}, err
		}
	}
}
