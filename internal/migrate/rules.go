package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

const rulesUsage = `Usage: strata migrate rules --from rules.yml [--from …] --workspace ws-… [flags]

Moves Prometheus rule files (or PrometheusRule manifests) into a workspace: one rule groups namespace per file (named
after it), or with --per-group one per group (<file>-<group>). Each file is checked as
Prometheus loads it first. A namespace that does not exist is created, one whose rules
differ is replaced (PutRuleGroupsNamespace), an identical one is left alone. --dry-run
prints what would change, with the differences, and changes nothing. Requests are
signed with the standard AWS credential chain. Exits 1 when a file or a request fails.

Flags:
`

// RulesConfig is what `strata migrate rules` moves where.
type RulesConfig struct {
	Files     []string
	Workspace string
	PerGroup  bool
	DryRun    bool
	// Client is the workspace's control plane.
	Client *amp.Client
}

// RuleChange is what rules did, or would do, to one namespace.
type RuleChange struct {
	Namespace string
	// Action is "create", "update", "unchanged" or "failed".
	Action string
	Diff   string // for update: the lines removed and added
	Err    error
}

var namespaceInvalid = regexp.MustCompile(`[^-.0-9A-Z_a-z]`)

// namespaceName turns a file or group name into a rule groups namespace name: AMP's
// characters, starting with a letter or digit, at most 64.
func namespaceName(s string) string {
	n := namespaceInvalid.ReplaceAllString(s, "_")
	n = strings.TrimLeft(n, "-._")
	if n == "" {
		n = "rules"
	}
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}

// namespacesOf reads the rule files into namespaces (name → YAML), checked as
// Prometheus checks them.
func namespacesOf(files []string, perGroup bool) (map[string][]byte, error) {
	out := map[string][]byte{}
	add := func(name string, data []byte, from string) error {
		if _, dup := out[name]; dup {
			return fmt.Errorf("%s: namespace %q comes from two files or groups; rename one", from, name)
		}
		out[name] = data
		return nil
	}
	p := parser.NewParser(parser.Options{})
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		sources, err := ruleSources(base, data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, src := range sources {
			groups, errs := rulefmt.Parse(src.data, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
			if len(errs) > 0 {
				return nil, fmt.Errorf("%s: %s: %w", f, src.name, errors.Join(errs...))
			}
			if !perGroup {
				if err := add(namespaceName(src.name), src.data, f); err != nil {
					return nil, err
				}
				continue
			}
			for _, g := range groups.Groups {
				one, err := yaml.Marshal(rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{g}})
				if err != nil {
					return nil, fmt.Errorf("%s: group %q: %w", f, g.Name, err)
				}
				if err := add(namespaceName(src.name+"-"+g.Name), one, f); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// ruleSource is one rule file's worth of groups: a Prometheus rule file, or the spec of
// one PrometheusRule.
type ruleSource struct {
	name string
	data []byte
}

// ruleSources reads a rule file: a Prometheus rule file is one source named after the
// file; Kubernetes manifests of the Prometheus Operator's PrometheusRule (kube-prometheus'
// form, several documents per file allowed) give one source per PrometheusRule, named
// after it, its spec.groups as a rule file.
func ruleSources(base string, data []byte) ([]ruleSource, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var sources []ruleSource
	manifests := false
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
			Spec struct {
				Groups yaml.Node `yaml:"groups"`
			} `yaml:"spec"`
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			break // not YAML manifests: the rule file parser says what is wrong
		}
		if doc.Kind == "" {
			continue
		}
		manifests = true
		if doc.Kind != "PrometheusRule" {
			continue // a Deployment, a ConfigMap… in the same file
		}
		groups, err := yaml.Marshal(map[string]*yaml.Node{"groups": &doc.Spec.Groups})
		if err != nil {
			return nil, fmt.Errorf("PrometheusRule %s: %w", doc.Metadata.Name, err)
		}
		name := doc.Metadata.Name
		if name == "" {
			name = base
		}
		sources = append(sources, ruleSource{name, groups})
	}
	if !manifests {
		return []ruleSource{{base, data}}, nil
	}
	if len(sources) == 0 {
		return nil, errors.New("Kubernetes manifests without a PrometheusRule")
	}
	return sources, nil
}

// Rules moves the rule files into the workspace (see rulesUsage), namespace by
// namespace in name order; a failed one does not stop the others.
func Rules(ctx context.Context, cfg RulesConfig) ([]RuleChange, error) {
	nss, err := namespacesOf(cfg.Files, cfg.PerGroup)
	if err != nil {
		return nil, err
	}
	var out []RuleChange
	for _, name := range sortedKeys(nss) {
		data := nss[name]
		ch := RuleChange{Namespace: name}
		cur, err := cfg.Client.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: aws.String(cfg.Workspace), Name: aws.String(name)})
		var missing *types.ResourceNotFoundException
		switch {
		case errors.As(err, &missing):
			ch.Action = "create"
			if !cfg.DryRun {
				_, ch.Err = cfg.Client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(cfg.Workspace), Name: aws.String(name), Data: data})
			}
		case err != nil:
			ch.Action, ch.Err = "failed", err
		case string(cur.RuleGroupsNamespace.Data) == string(data):
			ch.Action = "unchanged"
		default:
			ch.Action, ch.Diff = "update", lineDiff(string(cur.RuleGroupsNamespace.Data), string(data))
			if !cfg.DryRun {
				_, ch.Err = cfg.Client.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(cfg.Workspace), Name: aws.String(name), Data: data})
			}
		}
		if ch.Err != nil {
			ch.Action = "failed"
		}
		out = append(out, ch)
	}
	return out, nil
}

// controlPlaneClient is an AMP client of the control plane at endpoint, signing for
// region with the standard AWS credential chain.
func controlPlaneClient(ctx context.Context, endpoint, region string) (*amp.Client, error) {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, err
	}
	return amp.NewFromConfig(awsCfg, func(o *amp.Options) { o.BaseEndpoint = aws.String(endpoint) }), nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// lineDiff lists the lines of a that b lacks ("-") and those b adds ("+"), in order,
// by their longest common subsequence.
func lineDiff(a, b string) string {
	x, y := strings.Split(strings.TrimSuffix(a, "\n"), "\n"), strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&sb, "- %s\n", x[i])
			i++
		default:
			fmt.Fprintf(&sb, "+ %s\n", y[j])
			j++
		}
	}
	return sb.String()
}

func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("rules", rulesUsage, stderr)
	var cfg RulesConfig
	fs.Func("from", "A Prometheus rule file (repeat for several).", func(s string) error {
		cfg.Files = append(cfg.Files, s)
		return nil
	})
	fs.StringVar(&cfg.Workspace, "workspace", "", "The workspace's id (ws-…).")
	fs.BoolVar(&cfg.PerGroup, "per-group", false, "One namespace per rule group (<file>-<group>) instead of one per file.")
	fs.BoolVar(&cfg.DryRun, "dry-run", false, "Print what would change, with the differences; change nothing.")
	endpoint := fs.String("endpoint-url", "", "The control plane's URL (the server's), as the AWS CLI's --endpoint-url.")
	region := fs.String("region", os.Getenv("AWS_REGION"), "The region the requests are signed for.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if len(cfg.Files) == 0 || cfg.Workspace == "" || *endpoint == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	var err error
	if cfg.Client, err = controlPlaneClient(ctx, *endpoint, *region); err != nil {
		fmt.Fprintln(stderr, "strata migrate rules:", err)
		return 2
	}
	changes, err := Rules(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "strata migrate rules:", err)
		return 1
	}
	failed := false
	verb := map[string]string{"create": "created", "update": "replaced", "unchanged": "unchanged", "failed": "FAILED"}
	if cfg.DryRun {
		verb["create"], verb["update"] = "would be created", "would be replaced"
	}
	for _, ch := range changes {
		fmt.Fprintf(stdout, "%s: %s\n", ch.Namespace, verb[ch.Action])
		if ch.Diff != "" {
			for _, l := range strings.SplitAfter(strings.TrimSuffix(ch.Diff, "\n"), "\n") {
				fmt.Fprintf(stdout, "    %s", l)
			}
			fmt.Fprintln(stdout)
		}
		if ch.Err != nil {
			failed = true
			fmt.Fprintf(stdout, "    %v\n", ch.Err)
		}
	}
	if failed {
		return 1
	}
	return 0
}
