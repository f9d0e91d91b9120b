package goaws

import (
	"context"
	"net/url"
	"testing"
	"time"
)

func TestPublishReachesTheQueue(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.call(ctx, url.Values{
		"Action":                         {"Publish"},
		"TopicArn":                       {s.TopicARN},
		"Subject":                        {"hello"},
		"Message":                        {"world"},
		"MessageAttributes.entry.1.Name": {"severity"},
		"MessageAttributes.entry.1.Value.DataType":    {"String"},
		"MessageAttributes.entry.1.Value.StringValue": {"critical"},
	}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.TopicArn != s.TopicARN || n.Subject != "hello" || n.Message != "world" || n.MessageAttributes["severity"].Value != "critical" {
		t.Errorf("received %+v", n)
	}
}
