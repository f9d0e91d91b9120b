package policy

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output in testdata/eval/*.txt")

// TestScripts runs the data-driven cases in testdata/eval. Each case is
//
//	<command> [args]
//	<input lines>
//	----
//	<expected output lines, up to a blank line>
//
// Commands:
//
//	identity-policy NAME    parse the input as an identity policy named NAME
//	resource-policy NAME    parse the input as a resource policy named NAME
//	policy NAME             parse with Parse (no kind checks)
//	eval [identity=A,B] [resource=R]
//	                        evaluate a request described by "field: value"
//	                        input lines: principal (an ARN), service,
//	                        account, action, resource, time (RFC 3339) and
//	                        context (key=value; repeat a key for more values)
//
// Parse commands print "ok" or the error; eval prints Result.String().
// Lines starting with '#' between cases are comments. Run with -rewrite to
// regenerate the expected output after an intended change, and review the
// diff.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/eval/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/eval/*.txt files")
	}
	total := 0
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			total += runScript(t, file)
		})
	}
	if total < 30 {
		t.Errorf("only %d script cases; the suite is meant to have at least 30", total)
	}
}

type scriptCase struct {
	line     int // 1-based line of the command
	cmd      string
	args     []string
	input    []string
	expStart int // index of the first expected line in the file's lines
	expEnd   int // one past the last expected line
}

func runScript(t *testing.T, file string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	cases := parseScript(t, file, lines)

	identity := map[string]*Policy{}
	resource := map[string]*Policy{}
	var outputs []string
	for _, c := range cases {
		got := runScriptCase(t, file, c, identity, resource)
		outputs = append(outputs, got)
		want := strings.Join(lines[c.expStart:c.expEnd], "\n")
		if !*rewrite && got != want {
			t.Errorf("%s:%d: %s %s\n got: %s\nwant: %s", file, c.line, c.cmd, strings.Join(c.args, " "), got, want)
		}
	}
	if *rewrite {
		var out []string
		prev := 0
		for i, c := range cases {
			out = append(out, lines[prev:c.expStart]...)
			out = append(out, outputs[i])
			prev = c.expEnd
		}
		out = append(out, lines[prev:]...)
		if err := os.WriteFile(file, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return len(cases)
}

func parseScript(t *testing.T, file string, lines []string) []scriptCase {
	var cases []scriptCase
	for i := 0; i < len(lines); {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			i++
			continue
		}
		fields := strings.Fields(l)
		c := scriptCase{line: i + 1, cmd: fields[0], args: fields[1:]}
		i++
		for i < len(lines) && lines[i] != "----" {
			c.input = append(c.input, lines[i])
			i++
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: missing ----", file, c.line)
		}
		i++
		c.expStart = i
		for i < len(lines) && strings.TrimSpace(lines[i]) != "" {
			i++
		}
		c.expEnd = i
		cases = append(cases, c)
	}
	return cases
}

func runScriptCase(t *testing.T, file string, c scriptCase, identity, resource map[string]*Policy) string {
	input := strings.Join(c.input, "\n")
	parseCmd := func(parse func([]byte) (*Policy, error), into map[string]*Policy) string {
		if len(c.args) != 1 {
			t.Fatalf("%s:%d: %s wants a name", file, c.line, c.cmd)
		}
		p, err := parse([]byte(input))
		if err != nil {
			return "error: " + err.Error()
		}
		into[c.args[0]] = p
		return "ok"
	}
	switch c.cmd {
	case "identity-policy":
		return parseCmd(ParseIdentityPolicy, identity)
	case "resource-policy":
		return parseCmd(ParseResourcePolicy, resource)
	case "policy":
		return parseCmd(Parse, identity)
	case "eval":
		var ids, session []*Policy
		var res *Policy
		requireGrant := false
		for _, a := range c.args {
			k, v, _ := strings.Cut(a, "=")
			switch k {
			case "identity":
				for _, name := range strings.Split(v, ",") {
					p, ok := identity[name]
					if !ok {
						t.Fatalf("%s:%d: no identity policy %q", file, c.line, name)
					}
					ids = append(ids, p)
				}
			case "session":
				for _, name := range strings.Split(v, ",") {
					p, ok := identity[name]
					if !ok {
						t.Fatalf("%s:%d: no identity policy %q", file, c.line, name)
					}
					session = append(session, p)
				}
			case "resource":
				p, ok := resource[v]
				if !ok {
					t.Fatalf("%s:%d: no resource policy %q", file, c.line, v)
				}
				res = p
			case "require-resource-grant":
				requireGrant = true
			default:
				t.Fatalf("%s:%d: unknown eval argument %q", file, c.line, a)
			}
		}
		req, err := scriptRequest(c.input)
		if err != nil {
			t.Fatalf("%s:%d: %v", file, c.line, err)
		}
		req.SessionPolicies, req.RequireResourceGrant = session, requireGrant
		r := Explain(ids, res, req)
		if d := Evaluate(ids, res, req); d != r.Decision {
			t.Errorf("%s:%d: Evaluate = %v, Explain = %v", file, c.line, d, r.Decision)
		}
		return r.String()
	}
	t.Fatalf("%s:%d: unknown command %q", file, c.line, c.cmd)
	return ""
}

func scriptRequest(lines []string) (Request, error) {
	var req Request
	sc := bufio.NewScanner(strings.NewReader(strings.Join(lines, "\n")))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return req, fmt.Errorf("want \"field: value\", got %q", l)
		}
		v = strings.TrimSpace(v)
		switch k {
		case "principal":
			p, err := ParsePrincipal(v)
			if err != nil {
				return req, err
			}
			req.Principal = p
		case "service":
			req.Principal.Service = v
		case "federated":
			req.Principal.Federated = v
		case "account":
			req.Principal.Account = v
		case "action":
			req.Action = v
		case "resource":
			req.Resource = v
		case "time":
			tm, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return req, err
			}
			req.Time = tm
		case "context":
			key, val, hasVal := strings.Cut(v, "=")
			if req.Context == nil {
				req.Context = Context{}
			}
			if hasVal {
				req.Context[key] = append(req.Context[key], val)
			} else {
				req.Context[key] = nil
			}
		default:
			return req, fmt.Errorf("unknown field %q", k)
		}
	}
	return req, nil
}
