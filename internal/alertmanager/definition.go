package alertmanager

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Definition is a parsed alert manager definition: AMP's document, whose
// alertmanager_config is the Alertmanager configuration as text and whose template_files
// maps a template's name to its text. The configuration's `templates` list names the
// template files to load, as file globs matched against those names (AMP's and Cortex's
// convention: `templates: ['default_template']`).
type Definition struct {
	// Config is the Alertmanager configuration, loaded and checked by the library's own
	// loader (config.Load).
	Config *config.Config
	// Templates are the template_files, by name.
	Templates map[string]string
	// resolveTimeoutSet says whether the configuration sets global.resolve_timeout.
	resolveTimeoutSet bool
}

// ampDefinition is AMP's document.
type ampDefinition struct {
	AlertmanagerConfig string            `yaml:"alertmanager_config"`
	TemplateFiles      map[string]string `yaml:"template_files"`
}

// ParseDefinition parses AMP's alert manager definition document and loads its
// Alertmanager configuration and templates as the Alertmanager would. It checks what can
// be checked without running it: the configuration (receivers, routes, inhibition rules,
// time intervals) and that every template parses and every `templates` entry is a valid
// glob. Errors name the part that failed.
func ParseDefinition(data []byte) (*Definition, error) {
	var doc ampDefinition
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing the definition: %w", err)
	}
	if strings.TrimSpace(doc.AlertmanagerConfig) == "" {
		return nil, errors.New("the definition has no alertmanager_config")
	}
	conf, err := config.Load(doc.AlertmanagerConfig)
	if err != nil {
		return nil, fmt.Errorf("loading alertmanager_config: %w", err)
	}
	var probe struct {
		Global struct {
			ResolveTimeout *string `yaml:"resolve_timeout"`
		} `yaml:"global"`
	}
	// config.Load accepted it, so it is YAML; an error here only leaves the flag unset.
	_ = yaml.Unmarshal([]byte(doc.AlertmanagerConfig), &probe)
	d := &Definition{
		Config:            conf,
		Templates:         doc.TemplateFiles,
		resolveTimeoutSet: probe.Global.ResolveTimeout != nil,
	}
	if _, err := d.template(nil); err != nil {
		return nil, err
	}
	return d, nil
}

// RedactDefinition returns a stored definition as Describe shows it: the
// alertmanager_config as the Alertmanager's loader reads it, with every secret (passwords,
// API keys, tokens, webhook and Slack URLs) shown as <secret>, and the template files as
// uploaded. Unlike AMP, which returns the document as uploaded, no Describe answer holds
// a secret; putting the answer back would store "<secret>" as the secrets.
func RedactDefinition(data []byte) ([]byte, error) {
	var def ampDefinition
	if err := yaml.Unmarshal(data, &def); err != nil {
		return nil, err
	}
	cfg, err := config.Load(def.AlertmanagerConfig)
	if err != nil {
		return nil, err
	}
	// Config.String marshals with the library's secret types masked.
	def.AlertmanagerConfig = cfg.String()
	if strings.HasPrefix(def.AlertmanagerConfig, "<error creating config string:") {
		return nil, errors.New(def.AlertmanagerConfig)
	}
	return yaml.Marshal(&def)
}

// template builds the notification templates: Alertmanager's defaults, then the template
// files that the configuration's `templates` globs match, in name order (each file
// once), so that a later definition of a template overrides an earlier one as in
// Alertmanager.
func (d *Definition) template(externalURL *url.URL) (*template.Template, error) {
	tmpl, err := template.FromGlobs(nil)
	if err != nil {
		return nil, fmt.Errorf("loading the default templates: %w", err)
	}
	names := make([]string, 0, len(d.Templates))
	for name := range d.Templates {
		names = append(names, name)
	}
	slices.Sort(names)
	loaded := map[string]bool{}
	for _, glob := range d.Config.Templates {
		if _, err := path.Match(glob, ""); err != nil {
			return nil, fmt.Errorf("templates entry %q: %w", glob, err)
		}
		for _, name := range names {
			if ok, _ := path.Match(glob, name); !ok || loaded[name] {
				continue
			}
			loaded[name] = true
			if err := tmpl.Parse(strings.NewReader(d.Templates[name])); err != nil {
				return nil, fmt.Errorf("parsing template file %q: %w", name, err)
			}
		}
	}
	tmpl.ExternalURL = externalURL
	return tmpl, nil
}

// applyDefaults sets what the definition leaves to the server.
func (d *Definition) applyDefaults(resolveTimeout time.Duration) {
	if !d.resolveTimeoutSet && d.Config.Global != nil {
		d.Config.Global.ResolveTimeout = model.Duration(resolveTimeout)
	}
}
