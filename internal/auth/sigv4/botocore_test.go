package sigv4

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Requests signed by botocore (testdata/botocore, see its README): the
// second real client, with its own habits (normalized paths, '+' on the
// wire for a signed "%20", UNSIGNED-PAYLOAD presigning).

type botocoreContext struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Region          string    `json:"region"`
	Service         string    `json:"service"`
	Timestamp       time.Time `json:"timestamp"`
	Presigned       bool      `json:"presigned"`
	Expires         int       `json:"expires"`
}

func TestBotocore(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "botocore", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 9 {
		t.Fatalf("found %d botocore requests, want 9", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var ctx botocoreContext
			b, err := os.ReadFile(strings.TrimSuffix(f, ".txt") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &ctx); err != nil {
				t.Fatal(err)
			}
			v := mustVerifier(t, Config{Region: ctx.Region, Service: ctx.Service}, StaticCredentials{
				ctx.AccessKeyID: {SecretAccessKey: ctx.SecretAccessKey, SessionToken: ctx.SessionToken, Principal: "botocore"},
			}, ctx.Timestamp.Add(time.Minute))

			r, body, err := readWireRequest(raw)
			if err != nil {
				t.Fatal(err)
			}
			id, err := v.Verify(r, body)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Identity{
				AccessKeyID:   ctx.AccessKeyID,
				Principal:     "botocore",
				Temporary:     ctx.SessionToken != "",
				Scope:         Scope{Date: ctx.Timestamp.Format("20060102"), Region: ctx.Region, Service: ctx.Service},
				SignedAt:      ctx.Timestamp,
				Presigned:     ctx.Presigned,
				PayloadSigned: name != "presigned-unsigned-payload",
			}
			if ctx.Presigned {
				want.Expires = ctx.Timestamp.Add(time.Duration(ctx.Expires) * time.Second)
			}
			if id != want {
				t.Errorf("identity %+v\nwant %+v", id, want)
			}

			if creq, err := os.ReadFile(strings.TrimSuffix(f, ".txt") + ".creq"); err == nil {
				got, _, _ := canonicalDebug(t, v, r, body, true, false)
				if got != string(creq) {
					t.Errorf("canonical request:\n%s\nbotocore's:\n%s", got, creq)
				}
			} else if !ctx.Presigned {
				t.Fatalf("header-signed case without botocore's canonical request: %v", err)
			}

			assertEveryByteChangeRejected(t, v, raw, readWireRequest, true)

			if ctx.Presigned {
				late := mustVerifier(t, Config{Region: ctx.Region, Service: ctx.Service}, StaticCredentials{
					ctx.AccessKeyID: {SecretAccessKey: ctx.SecretAccessKey, SessionToken: ctx.SessionToken},
				}, want.Expires.Add(time.Second))
				_, err := late.Verify(r, body)
				checkRejected(t, err, ErrPresignExpired, "Request has expired")
			}
		})
	}
}
