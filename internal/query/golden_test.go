package query

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// -update rewrites the goldens from a live Prometheus 2.42 (TestPrometheus242) and, for
// the cases 2.42 cannot answer, from our own answers (TestGolden). Review the diff.
var update = flag.Bool("update", false, "rewrite testdata goldens")

// goldenPath is where a case's golden lives: Prometheus 2.42's normalized answer, or our
// own answer for the cases 2.42 cannot give.
func goldenPath(c apiCase) string {
	if c.only3x != "" {
		return filepath.Join("testdata", "strata", c.name+".json")
	}
	return filepath.Join("testdata", "prometheus-2.42", c.name+".json")
}

// A golden file is the status code on the first line and the body after it.
func readGolden(t *testing.T, c apiCase) (int, []byte) {
	t.Helper()
	b, err := os.ReadFile(goldenPath(c))
	if err != nil {
		t.Fatalf("%v (run the tests with -update where Prometheus 2.42 is installed)", err)
	}
	line, body, _ := bytes.Cut(b, []byte("\n"))
	status, err := strconv.Atoi(string(line))
	if err != nil {
		t.Fatalf("%s: bad status line %q", goldenPath(c), line)
	}
	return status, bytes.TrimSuffix(body, []byte("\n"))
}

func writeGolden(t *testing.T, c apiCase, status int, body []byte) {
	t.Helper()
	path := goldenPath(c)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fmt.Appendf(nil, "%d\n%s\n", status, body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ours asks Strata, by GET and by POST, checks that both answers are the same and returns
// it, with a fixed timestamp where the answer depends on the clock.
func (e *env) ours(t *testing.T, c apiCase) answer {
	t.Helper()
	get := e.do(t, http.MethodGet, testWS, c.path, c.params)
	post := e.do(t, http.MethodPost, testWS, c.path, c.params)
	if get.status != post.status || !bytes.Equal(normalize(c, get.status, get.body), normalize(c, post.status, post.body)) {
		t.Errorf("GET and POST differ:\nGET  %d %s\nPOST %d %s", get.status, get.body, post.status, post.body)
	}
	if ct := get.header.Get("Content-Type"); get.status != http.StatusNoContent && ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return get
}

// comparable returns our answer as it is compared with Prometheus 2.42's.
func comparable(t *testing.T, c apiCase, a answer) []byte {
	t.Helper()
	body := a.body
	if c.drop3xAnnotations != "" {
		var had bool
		body, had = withoutAnnotations(body)
		if !had {
			t.Errorf("expected the annotation (%s) in %s", c.drop3xAnnotations, a.body)
		}
	}
	return normalize(c, a.status, body)
}

// TestGolden compares every case's answer with its golden: Prometheus 2.42's answer for
// the same data, normalized (see normalize), or our own reviewed answer for the cases
// 2.42 cannot give. It needs no Prometheus.
func TestGolden(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range apiCases {
		t.Run(c.name, func(t *testing.T) {
			a := e.ours(t, c)
			if c.only3x != "" {
				if *update {
					writeGolden(t, c, a.status, a.body)
				}
				status, want := readGolden(t, c)
				if a.status != status || !bytes.Equal(a.body, want) {
					t.Errorf("answer differs from %s:\ngot  %d %s\nwant %d %s", goldenPath(c), a.status, a.body, status, want)
				}
				return
			}
			if _, err := os.Stat(goldenPath(c)); err != nil && *update {
				t.Skip("the golden is written by TestPrometheus242 -update")
			}
			status, want := readGolden(t, c)
			got := comparable(t, c, a)
			if a.status != status || !bytes.Equal(got, want) {
				t.Errorf("answer differs from Prometheus 2.42's (%s):\ngot  %d %s\nwant %d %s", goldenPath(c), a.status, got, status, want)
			}
		})
	}
}
