package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/alertmanager"
)

const alertmanagerUsage = `Usage: strata migrate alertmanager --from alertmanager.yml --workspace ws-… --endpoint-url URL [flags]

Moves an Alertmanager configuration into a workspace's alert manager definition (AMP's
format: alertmanager_config and template_files). The template files the configuration's
'templates' globs match (relative to its folder, as Alertmanager reads them) are inlined
under their file names, and every '…_file' setting (password_file, api_url_file,
bearer_token_file, ca_file…) is replaced by the file's content: the server cannot read
this machine's files. The result is checked as the server checks it. Receivers and
settings that Amazon Managed Service for Prometheus would refuse are listed (it sends to
Amazon SNS only, without api_url or http_config, and with a sigv4 region); Strata
accepts them. A workspace without a definition gets one, a different one is replaced, an
identical one is left alone; --dry-run prints the differences and changes nothing.
Requests are signed with the standard AWS credential chain. Exits 1 when the
configuration does not convert or a request fails.

Flags:
`

// AlertmanagerConfig is what `strata migrate alertmanager` moves where.
type AlertmanagerConfig struct {
	File      string
	Workspace string
	DryRun    bool
	// Output, when set, also gets the definition (for the AWS CLI or review).
	Output string
	// Client is the workspace's control plane.
	Client *amp.Client
}

// Conversion is an Alertmanager configuration in AMP's definition format.
type Conversion struct {
	Definition []byte
	// Templates are the template files inlined, by the name they have in the definition.
	Templates []string
	// Inlined are the …_file settings replaced by their files' content, as path: setting.
	Inlined []string
	// NotAMP lists what Amazon Managed Service for Prometheus would refuse.
	NotAMP []string
}

// ConvertAlertmanager reads an Alertmanager configuration file and builds the workspace
// definition from it (see alertmanagerUsage).
func ConvertAlertmanager(file string) (*Conversion, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not an Alertmanager configuration (a YAML mapping)", file)
	}
	root := doc.Content[0]
	dir := filepath.Dir(file)
	conv := &Conversion{}

	// The …_file settings: Alertmanager reads them relative to the configuration's folder.
	if err := inlineFiles(root, dir, "", conv); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	templates, err := inlineTemplates(root, dir, conv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	conv.NotAMP = notAMP(root)

	config, err := yaml.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	def, err := yaml.Marshal(struct {
		TemplateFiles      map[string]string `yaml:"template_files,omitempty"`
		AlertmanagerConfig string            `yaml:"alertmanager_config"`
	}{templates, string(config)})
	if err != nil {
		return nil, err
	}
	// The server's own check: the library's loader, the templates, the globs.
	if _, err := alertmanager.ParseDefinition(def); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	conv.Definition = def
	return conv, nil
}

// inlineFiles replaces every `<name>_file: path` in the mapping n (and below) with
// `<name>: content`. at is n's place, for the report.
func inlineFiles(n *yaml.Node, dir, at string, conv *Conversion) error {
	switch n.Kind {
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := inlineFiles(c, dir, fmt.Sprintf("%s[%d]", at, i), conv); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			here := strings.TrimPrefix(at+"."+k.Value, ".")
			if name, ok := strings.CutSuffix(k.Value, "_file"); ok && v.Kind == yaml.ScalarNode && name != "" {
				path := v.Value
				if !filepath.IsAbs(path) {
					path = filepath.Join(dir, path)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("%s: %w", here, err)
				}
				k.Value = name
				v.Value, v.Tag, v.Style = strings.TrimSpace(string(b)), "!!str", 0
				conv.Inlined = append(conv.Inlined, here+": "+path)
				continue
			}
			if err := inlineFiles(v, dir, here, conv); err != nil {
				return err
			}
		}
	}
	return nil
}

// inlineTemplates reads the files the `templates` globs match and rewrites the list to
// their names in template_files.
func inlineTemplates(root *yaml.Node, dir string, conv *Conversion) (map[string]string, error) {
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "templates" {
			list = root.Content[i+1]
		}
	}
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	var names []*yaml.Node
	for _, g := range list.Content {
		pattern := g.Value
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		files, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("templates: %q: %w", g.Value, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("templates: %w", err)
			}
			name := filepath.Base(f)
			for k := 2; out[name] != "" && out[name] != string(b); k++ {
				// Two folders with a file of one name: keep both.
				name = fmt.Sprintf("%s_%d", filepath.Base(f), k)
			}
			if _, dup := out[name]; dup {
				continue
			}
			out[name] = string(b)
			conv.Templates = append(conv.Templates, name)
			names = append(names, &yaml.Node{Kind: yaml.ScalarNode, Value: name})
		}
	}
	list.Content = names
	if len(names) == 0 {
		list.Style = yaml.FlowStyle // templates: []
	}
	return out, nil
}

// notAMP lists what Amazon Managed Service for Prometheus' alert manager refuses in the
// configuration: receivers other than Amazon SNS, sns_configs with api_url or
// http_config, sigv4 without a region; and what it changes (repeat_interval beyond 5 days).
func notAMP(root *yaml.Node) []string {
	var out []string
	receivers, route := child(root, "receivers"), child(root, "route")
	if receivers != nil {
		for _, r := range receivers.Content {
			name := "?"
			if n := child(r, "name"); n != nil {
				name = n.Value
			}
			for i := 0; i+1 < len(r.Content); i += 2 {
				kind := r.Content[i].Value
				if !strings.HasSuffix(kind, "_configs") {
					continue
				}
				if kind != "sns_configs" {
					out = append(out, fmt.Sprintf("receiver %q: %s (AMP sends to Amazon SNS only)", name, kind))
					continue
				}
				for _, sns := range r.Content[i+1].Content {
					for _, f := range []string{"api_url", "http_config"} {
						if child(sns, f) != nil {
							out = append(out, fmt.Sprintf("receiver %q: sns_configs with %s (AMP sets it itself)", name, f))
						}
					}
					if s := child(sns, "sigv4"); s == nil || child(s, "region") == nil {
						out = append(out, fmt.Sprintf("receiver %q: sns_configs without sigv4.region (AMP needs it)", name))
					}
				}
			}
		}
	}
	if g := child(root, "global"); g != nil && child(g, "http_config") != nil {
		out = append(out, "global.http_config (AMP does not support proxies and client settings)")
	}
	var walk func(r *yaml.Node, at string)
	walk = func(r *yaml.Node, at string) {
		if ri := child(r, "repeat_interval"); ri != nil {
			if d, err := model.ParseDuration(ri.Value); err == nil && time.Duration(d) > 5*24*time.Hour {
				out = append(out, fmt.Sprintf("%s.repeat_interval %s (AMP repeats after 5 days at most)", at, ri.Value))
			}
		}
		if rs := child(r, "routes"); rs != nil {
			for i, sub := range rs.Content {
				walk(sub, fmt.Sprintf("%s.routes[%d]", at, i))
			}
		}
	}
	if route != nil {
		walk(route, "route")
	}
	return out
}

// child is the value of key in the mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// AlertmanagerChange is what `migrate alertmanager` did, or would do, to the definition.
type AlertmanagerChange struct {
	// Action is "create", "update" or "unchanged".
	Action string
	// Diff is between the definitions as Describe shows them: secrets as <secret>.
	Diff string
	// Secrets says the definition holds secrets, which Describe hides: a definition that
	// looks the same is put again, as its secrets may differ.
	Secrets bool
}

// Alertmanager converts cfg.File and puts it into the workspace.
func Alertmanager(ctx context.Context, cfg AlertmanagerConfig) (*Conversion, AlertmanagerChange, error) {
	conv, err := ConvertAlertmanager(cfg.File)
	if err != nil {
		return nil, AlertmanagerChange{}, err
	}
	if cfg.Output != "" {
		if err := os.WriteFile(cfg.Output, conv.Definition, 0o600); err != nil {
			return conv, AlertmanagerChange{}, err
		}
	}
	// Describe answers with the secrets hidden: compare in that form.
	shown, err := alertmanager.RedactDefinition(conv.Definition)
	if err != nil {
		return conv, AlertmanagerChange{}, err
	}
	ch := AlertmanagerChange{Secrets: strings.Contains(string(shown), "<secret>")}
	cur, err := cfg.Client.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: aws.String(cfg.Workspace)})
	var missing *types.ResourceNotFoundException
	switch {
	case errors.As(err, &missing):
		ch.Action = "create"
		if !cfg.DryRun {
			_, err = cfg.Client.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(cfg.Workspace), Data: conv.Definition})
		}
		return conv, ch, err
	case err != nil:
		return conv, ch, err
	case string(cur.AlertManagerDefinition.Data) == string(shown) && !ch.Secrets:
		ch.Action = "unchanged"
		return conv, ch, nil
	}
	ch.Action, ch.Diff = "update", lineDiff(string(cur.AlertManagerDefinition.Data), string(shown))
	if !cfg.DryRun {
		_, err = cfg.Client.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: aws.String(cfg.Workspace), Data: conv.Definition})
	}
	return conv, ch, err
}

func runAlertmanager(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("alertmanager", alertmanagerUsage, stderr)
	var cfg AlertmanagerConfig
	fs.StringVar(&cfg.File, "from", "", "The Alertmanager configuration file (alertmanager.yml).")
	fs.StringVar(&cfg.Workspace, "workspace", "", "The workspace's id (ws-…).")
	fs.BoolVar(&cfg.DryRun, "dry-run", false, "Print what would change, with the differences; change nothing.")
	fs.StringVar(&cfg.Output, "output", "", "Also write the definition to this file.")
	endpoint := fs.String("endpoint-url", "", "The control plane's URL (the server's), as the AWS CLI's --endpoint-url.")
	region := fs.String("region", os.Getenv("AWS_REGION"), "The region the requests are signed for.")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if cfg.File == "" || cfg.Workspace == "" || *endpoint == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	var err error
	if cfg.Client, err = controlPlaneClient(ctx, *endpoint, *region); err != nil {
		fmt.Fprintln(stderr, "strata migrate alertmanager:", err)
		return 2
	}
	conv, ch, err := Alertmanager(ctx, cfg)
	if conv != nil {
		fmt.Fprintf(stdout, "templates inlined: %d %v\n", len(conv.Templates), conv.Templates)
		for _, in := range conv.Inlined {
			fmt.Fprintf(stdout, "file inlined: %s\n", in)
		}
		if len(conv.NotAMP) > 0 {
			fmt.Fprintf(stdout, "Amazon Managed Service for Prometheus would refuse or change (Strata accepts them):\n")
			for _, n := range slices.Sorted(slices.Values(conv.NotAMP)) {
				fmt.Fprintf(stdout, "    %s\n", n)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "strata migrate alertmanager:", err)
		return 1
	}
	verb := map[string]string{"create": "created", "update": "replaced", "unchanged": "unchanged"}
	if cfg.DryRun {
		verb["create"], verb["update"] = "would be created", "would be replaced"
	}
	note := ""
	if ch.Action == "update" && ch.Diff == "" {
		note = " (it looks the same, but its secrets cannot be compared: Describe hides them)"
	}
	fmt.Fprintf(stdout, "alert manager definition of %s: %s%s\n", cfg.Workspace, verb[ch.Action], note)
	if ch.Diff != "" {
		for _, l := range strings.SplitAfter(strings.TrimSuffix(ch.Diff, "\n"), "\n") {
			fmt.Fprintf(stdout, "    %s", l)
		}
		fmt.Fprintln(stdout)
	}
	return 0
}
