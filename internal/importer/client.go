package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/stratametrics/strata/internal/blocks"
)

// Client sends blocks to a workspace's import API, resuming what is staged.
type Client struct {
	// Endpoint is the workspace's endpoint (…/workspaces/ws-…).
	Endpoint string
	HTTP     *http.Client
	// Credentials sign the requests (SigV4, service aps, Region); nil sends them unsigned.
	Credentials aws.CredentialsProvider
	Region      string
	// PartSize is the most bytes one request carries; under the server's
	// --auth.max-body-bytes.
	PartSize int64
}

// APIError is an answer of the import API other than 2xx.
type APIError struct {
	Status  int
	Type    string
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message) }

// Refused says whether the server refused the block itself (400, 413): sending it again
// would not help.
func Refused(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Status == http.StatusBadRequest || e.Status == http.StatusRequestEntityTooLarge)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Endpoint, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body == nil {
		req.Body = http.NoBody
	} else {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.Credentials != nil {
		creds, err := c.Credentials.Retrieve(ctx)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		req.Header.Set("X-Amz-Content-Sha256", hash)
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "aps", c.Region, time.Now()); err != nil {
			return err
		}
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode, Type: resp.Header.Get("x-amzn-ErrorType")}
		var msg struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &msg) == nil && msg.Message != "" {
			e.Message = msg.Message
		} else {
			e.Message = strings.TrimSpace(string(b))
		}
		return e
	}
	return json.Unmarshal(b, out)
}

// Status asks what the workspace holds of block id.
func (c *Client) Status(ctx context.Context, id string) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/api/v1/import/blocks/"+id, nil, &st)
	return st, err
}

// Send sends the block in dir (named after its ULID) and imports it, from what is
// already staged; sent is told the bytes of each part as it is accepted.
func (c *Client) Send(ctx context.Context, dir string, sent func(n int64)) (*Result, error) {
	id := filepath.Base(dir)
	st, err := c.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.Status == "exists" {
		return &Result{ULID: id, Status: "exists"}, nil
	}
	names, sizes, err := BlockFiles(dir)
	if err != nil {
		return nil, err
	}
	if _, ok := sizes[blocks.MetaFilename]; !ok {
		return nil, fmt.Errorf("%s: no meta.json: not a block", dir)
	}
	buf := make([]byte, c.PartSize)
	for _, name := range names {
		offset := st.Files[name]
		if offset > sizes[name] {
			offset = 0 // staged from another file of that name: start over (409 tells)
		}
		if err := c.sendFile(ctx, id, dir, name, offset, sizes[name], buf, sent); err != nil {
			return nil, err
		}
	}
	var res Result
	if err := c.do(ctx, http.MethodPost, "/api/v1/import/blocks/"+id, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *Client) sendFile(ctx context.Context, id, dir, name string, offset, size int64, buf []byte, sent func(int64)) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return err
	}
	defer f.Close()
	if sent != nil && offset > 0 {
		sent(offset) // staged before
	}
	for first := true; offset < size || (first && size == 0); first = false {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-offset)], offset)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		var out struct {
			Size int64 `json:"size"`
		}
		path := "/api/v1/import/blocks/" + id + "/files/" + name + "?offset=" + url.QueryEscape(fmt.Sprint(offset))
		if err := c.do(ctx, http.MethodPut, path, buf[:n], &out); err != nil {
			return fmt.Errorf("sending %s of block %s: %w", name, id, err)
		}
		offset = out.Size
		if sent != nil {
			sent(int64(n))
		}
	}
	return nil
}
