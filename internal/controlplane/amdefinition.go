package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	amtemplate "github.com/prometheus/alertmanager/template"
	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/limits"
)

// amDefinition is AMP's alert manager definition document:
//
//	template_files:
//	  default_template: |
//	    {{ define "sns.default.message" }}...{{ end }}
//	alertmanager_config: |
//	  templates: [default_template]
//	  route: {receiver: default}
//	  receivers: [{name: default, sns_configs: [...]}]
type amDefinition struct {
	AlertmanagerConfig string            `yaml:"alertmanager_config"`
	TemplateFiles      map[string]string `yaml:"template_files"`
}

// checkDefinition validates an alert manager definition with the Alertmanager's own
// configuration loader and template parser, refuses what AMP refuses (settings read from
// files), and checks the definition's quotas. Its errors are *awsapi.Error values.
func checkDefinition(data []byte, l *limits.Limits) (err error) {
	// The loader is a library's, run on what a user uploaded, also in the reconciler's
	// goroutine: a panic in it refuses the definition rather than end the process.
	defer func() {
		if r := recover(); r != nil {
			err = awsapi.Validation("data", "the alert manager definition could not be checked: %v", r)
		}
	}()
	if max := l.AlertmanagerMaxConfigSizeBytes; max > 0 && len(data) > max {
		return awsapi.QuotaExceeded("AlertManagerDefinition", "", quotaAlertManagerFileSize,
			"Limit exceeded. Maximum alert manager definition file size: the definition is %d bytes, the limit is %d (alertmanager_max_config_size_bytes)", len(data), max)
	}
	def, cfg, err := parseDefinition(data)
	if err != nil {
		return err
	}
	return checkDefinitionQuotas(def, cfg, l)
}

// parseDefinition parses and validates a definition; see checkDefinition.
func parseDefinition(data []byte) (*amDefinition, *amconfig.Config, error) {
	var def amDefinition
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&def); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, awsapi.Validation("data", "data is not an alert manager definition (a YAML document with alertmanager_config: | <the Alertmanager configuration> and optional template_files: {<name>: <template>}): %v", err)
	}
	if strings.TrimSpace(def.AlertmanagerConfig) == "" {
		return nil, nil, awsapi.Validation("data", "data has no alertmanager_config: the alert manager definition needs alertmanager_config: | <the Alertmanager configuration>")
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(def.AlertmanagerConfig), &root); err != nil {
		return nil, nil, awsapi.Validation("data", "alertmanager_config is not valid YAML: %v", err)
	}
	if field := fileField(&root, ""); field != "" {
		return nil, nil, awsapi.Validation("data", "alertmanager_config: %s is not allowed: the definition may not read files of the server (AMP refuses *_file settings); give the value itself", field)
	}
	cfg, err := amconfig.Load(def.AlertmanagerConfig)
	if err != nil {
		return nil, nil, awsapi.Validation("data", "alertmanager_config is not a valid Alertmanager configuration: %v", err)
	}
	for i, t := range cfg.Templates {
		// AMP's templates name template_files; a path would read the server's files.
		if strings.ContainsAny(t, `/\`) || strings.Contains(t, "..") {
			return nil, nil, awsapi.Validation("data", "alertmanager_config: templates[%d] %q is a path: templates name template_files", i, t)
		}
	}
	tmpl, err := amtemplate.FromGlobs(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("loading the default templates: %w", err)
	}
	names := make([]string, 0, len(def.TemplateFiles))
	for name := range def.TemplateFiles {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
			return nil, nil, awsapi.Validation("data", "template_files: %q is not a template file name", name)
		}
		if err := tmpl.Parse(strings.NewReader(def.TemplateFiles[name])); err != nil {
			return nil, nil, awsapi.Validation("data", "template_files: %s is not a valid template: %v", name, err)
		}
	}
	return &def, cfg, nil
}

// fileField returns the path (e.g. receivers[0].webhook_configs[0].http_config.
// authorization.credentials_file) of the first setting in node, in document order, that
// names files of the server: Alertmanager's *_file settings (password_file,
// credentials_file, bearer_token_file, ca_file, cert_file, key_file, api_key_file,
// url_file, …) and the files of http_headers. "" when there is none.
func fileField(node *yaml.Node, path string) string {
	return fileFieldIn(node, path, false)
}

// freeKeyMaps are the settings whose keys are the user's own (label names, SNS
// attributes, header names, custom fields), not settings: a key there is never a file.
var freeKeyMaps = map[string]bool{
	"match": true, "match_re": true, "source_match": true, "source_match_re": true,
	"target_match": true, "target_match_re": true, "attributes": true, "details": true,
	"headers": true, "http_headers": true, "custom_fields": true, "fields": true,
}

func fileFieldIn(node *yaml.Node, path string, freeKeys bool) string {
	switch node.Kind {
	case yaml.DocumentNode:
		for _, c := range node.Content {
			if f := fileFieldIn(c, path, false); f != "" {
				return f
			}
		}
	case yaml.SequenceNode:
		for i, c := range node.Content {
			if f := fileFieldIn(c, path+"["+strconv.Itoa(i)+"]", false); f != "" {
				return f
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			key := node.Content[i].Value
			p := key
			if path != "" {
				p = path + "." + key
			}
			if !freeKeys && (strings.HasSuffix(key, "_file") || strings.HasSuffix(key, "_files") || key == "files") {
				return p
			}
			if f := fileFieldIn(node.Content[i+1], p, !freeKeys && freeKeyMaps[key]); f != "" {
				return f
			}
		}
	}
	// An alias repeats a node already walked where its anchor is (anchors come before
	// their aliases); following aliases could take exponential time.
	return ""
}

func checkDefinitionQuotas(def *amDefinition, cfg *amconfig.Config, l *limits.Limits) error {
	if max := l.AlertmanagerMaxTemplatesCount; max > 0 && len(def.TemplateFiles) > max {
		return awsapi.QuotaExceeded("AlertManagerDefinition", "", quotaTemplates,
			"Limit exceeded. Maximum templates in alert manager definition file: the definition has %d template_files, the limit is %d (alertmanager_max_templates_count)", len(def.TemplateFiles), max)
	}
	if max := l.AlertmanagerMaxInhibitionRules; max > 0 && len(cfg.InhibitRules) > max {
		return awsapi.QuotaExceeded("AlertManagerDefinition", "", quotaInhibitionRules,
			"Limit exceeded. Maximum inhibition rules in alert manager definition file: the definition has %d inhibit_rules, the limit is %d (alertmanager_max_inhibition_rules)", len(cfg.InhibitRules), max)
	}
	if max := l.AlertmanagerMaxRoutingTreeNodes; max > 0 {
		if n := countRoutes(cfg.Route); n > max {
			return awsapi.QuotaExceeded("AlertManagerDefinition", "", quotaRoutingTreeNodes,
				"Limit exceeded. Maximum nodes in alert manager routing tree: the definition has %d routes, the limit is %d (alertmanager_max_routing_tree_nodes)", n, max)
		}
	}
	return nil
}

// countRoutes counts the nodes of a routing tree, the root included.
func countRoutes(r *amconfig.Route) int {
	if r == nil {
		return 0
	}
	n := 1
	for _, c := range r.Routes {
		n += countRoutes(c)
	}
	return n
}

// recheckDefinition checks a stored definition that is being created or updated against
// the limits in force now, for the reconciler; it returns why the definition cannot
// become ACTIVE, or "".
func recheckDefinition(data []byte, l *limits.Limits) string {
	if err := checkDefinition(data, l); err != nil {
		return reason(err)
	}
	return ""
}
