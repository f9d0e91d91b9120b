package alertmanager

import (
	"context"
	"flag"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
)

func TestConfigFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.PersistInterval != DefaultPersistInterval || c.Retention != DefaultRetention || c.ResolveTimeout != DefaultResolveTimeout {
		t.Errorf("defaults: %+v", c)
	}
	fs.VisitAll(func(fl *flag.Flag) {
		if !strings.HasPrefix(fl.Name, "alertmanager.") {
			t.Errorf("flag %s outside alertmanager.", fl.Name)
		}
	})
	if got := c.Dir("/data"); got != "/data/alertmanager" {
		t.Errorf("Dir: %s", got)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.PersistInterval = 0 },
		func(c *Config) { c.ResyncInterval = -time.Second },
		func(c *Config) { c.Retention = 0 },
		func(c *Config) { c.ResolveTimeout = 0 },
		func(c *Config) { c.ExternalURL = "strata.example" },
	} {
		c2 := c
		bad(&c2)
		if err := c2.Validate(); err == nil {
			t.Errorf("%+v validated", c2)
		}
	}
}

func TestParseDefinition(t *testing.T) {
	const route = "route:\n  receiver: r\nreceivers:\n- name: r\n"
	for _, c := range []struct {
		name, doc, err string
	}{
		{"no config", "template_files:\n  a: x\n", "no alertmanager_config"},
		{"not yaml", "{", "parsing the definition"},
		{"bad config", definition(t, "route: {}\n", nil), "loading alertmanager_config"},
		{"bad template", definition(t, route+"templates: [a]\n", map[string]string{"a": "{{ define \"x\" }}{{ .Foo }"}), `parsing template file "a"`},
		{"bad glob", definition(t, route+"templates: ['[']\n", nil), `templates entry "["`},
		{"unlisted template is not loaded", definition(t, route, map[string]string{"a": "{{ broken"}), ""},
		{"ok", definition(t, route+"templates: ['*']\n", map[string]string{"a": `{{ define "x" }}X{{ end }}`}), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseDefinition([]byte(c.doc))
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Errorf("error %v, want %q", err, c.err)
			}
		})
	}
}

// Template files override Alertmanager's default templates in name order, and only
// those `templates` lists are loaded.
func TestDefinitionTemplates(t *testing.T) {
	def, err := ParseDefinition([]byte(definition(t, "route:\n  receiver: r\nreceivers:\n- name: r\ntemplates: ['b*', 'a']\n", map[string]string{
		"a":   `{{ define "__subject" }}from a{{ end }}`,
		"b1":  `{{ define "t" }}b1{{ end }}`,
		"b2":  `{{ define "t" }}b2{{ end }}`,
		"zzz": `{{ define "t" }}unlisted{{ end }}`,
	})))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := def.template(nil)
	if err != nil {
		t.Fatal(err)
	}
	for text, want := range map[string]string{`{{ template "t" . }}`: "b2", `{{ template "__subject" . }}`: "from a"} {
		got, err := tmpl.ExecuteTextString(text, &template.Data{})
		if err != nil || got != want {
			t.Errorf("%s = %q (%v), want %q", text, got, err, want)
		}
	}
	if !def.resolveTimeoutSet {
		def.applyDefaults(time.Minute)
	}
	if got := time.Duration(def.Config.Global.ResolveTimeout); got != time.Minute {
		t.Errorf("resolve timeout %v, want the server default", got)
	}
	def, err = ParseDefinition([]byte(definition(t, "global:\n  resolve_timeout: 7m\nroute:\n  receiver: r\nreceivers:\n- name: r\n", nil)))
	if err != nil {
		t.Fatal(err)
	}
	def.applyDefaults(time.Minute)
	if got := time.Duration(def.Config.Global.ResolveTimeout); got != 7*time.Minute {
		t.Errorf("resolve timeout %v, want the definition's", got)
	}
}

// Run follows the metadata: a change signal starts an Alertmanager, and the end of its
// context stops them, persisting their state.
func TestRunFollowsChanges(t *testing.T) {
	f := newFixture(t)
	changes := make(chan struct{}, 1)
	f.m.changes = changes
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.m.Run(ctx) }()
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	changes <- struct{}{}
	waitFor(t, "the workspace's Alertmanager", func() bool { return f.m.tenant("ws-a") != nil })
	f.createSilence("ws-a", map[string]string{"a": "b"})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.mustDo(http.StatusNotFound, http.MethodGet, "ws-a", "status", nil)
	for _, st := range states {
		if ok, err := f.bkt.Exists(context.Background(), objectName("ws-a", st)); err != nil || !ok {
			t.Errorf("%s not persisted at the end of Run (%v)", st, err)
		}
	}
}
