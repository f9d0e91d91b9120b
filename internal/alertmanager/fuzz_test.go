package alertmanager

import "testing"

// FuzzParseDefinition: any definition document either parses or is refused with an
// error, never a panic, and what parses builds its templates.
func FuzzParseDefinition(f *testing.F) {
	f.Add([]byte("alertmanager_config: |\n  route:\n    receiver: r\n  receivers:\n  - name: r\n"))
	f.Add([]byte("template_files:\n  a: '{{ define \"x\" }}y{{ end }}'\nalertmanager_config: |\n  templates: ['*']\n  route:\n    receiver: r\n  receivers:\n  - name: r\n    webhook_configs:\n    - url: http://example.com/\n"))
	f.Add([]byte("alertmanager_config: |\n  route:\n    receiver: r\n    routes:\n    - matchers: ['a=~\"(\"']\n  receivers:\n  - name: r\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		def, err := ParseDefinition(data)
		if err != nil {
			return
		}
		if def.Config == nil || def.Config.Route == nil {
			t.Fatal("a definition without a route parsed")
		}
		if _, err := def.template(nil); err != nil {
			t.Fatalf("a parsed definition's templates fail to build: %v", err)
		}
	})
}
