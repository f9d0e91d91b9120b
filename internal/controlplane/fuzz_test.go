package controlplane

import (
	"testing"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/limits"
)

// FuzzCheckRuleFile: any rule file is accepted or refused with an AWS error; nothing
// panics.
func FuzzCheckRuleFile(f *testing.F) {
	for _, seed := range []string{goodRules, rulesWith(3, 2), "groups: [\n", "groups:\n- name: g\n  interval: 1s\n  rules: [{record: r, expr: up}]\n", "", "a: &a [*a]"} {
		f.Add([]byte(seed))
	}
	l := limits.Default()
	p := parser.NewParser(parser.Options{})
	f.Fuzz(func(t *testing.T, data []byte) {
		rgs, err := checkRuleFile(data, "ns", p, &l)
		if err != nil {
			if awsapi.As(err) == nil {
				t.Fatalf("not an AWS error: %v", err)
			}
			return
		}
		statsOf(rgs)
	})
}

// FuzzCheckDefinition: any alert manager definition is accepted or refused with an AWS
// error; nothing panics, nothing reads a file.
func FuzzCheckDefinition(f *testing.F) {
	for _, seed := range []string{minimalDefinition, fullDefinition, definitionWithTemplates(3), "alertmanager_config: [\n",
		withConfig("route: {receiver: d}\nreceivers: [{name: d, webhook_configs: [{url_file: /x}]}]"), "alertmanager_config: |\n  a: &a [*a]\n"} {
		f.Add([]byte(seed))
	}
	l := limits.Default()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := checkDefinition(data, &l); err != nil && awsapi.As(err) == nil {
			t.Fatalf("not an AWS error: %v", err)
		}
	})
}
