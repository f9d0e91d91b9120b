package controlplane

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/limits"
	"github.com/stratametrics/strata/internal/meta"
)

// AMP's quota codes (Service Quotas, service code aps) of the quotas the rules and
// alerting operations check, sent in ServiceQuotaExceededException.quotaCode. AMP's
// older quotas (namespaces and rule groups per workspace, rules per group) have no code
// we know of; their errors carry none.
const (
	quotaRulesPerWorkspace    = "L-3D15CDB4"
	quotaNamespaceFileSize    = "L-C62641E3"
	quotaAlertManagerFileSize = "L-3316EF76"
	quotaTemplates            = "L-0F151AA2"
	quotaInhibitionRules      = "L-46D5E194"
	quotaRoutingTreeNodes     = "L-E3E60B3E"
)

const (
	// maxNamespaceNameLength is the model's RuleGroupsNamespaceName max.
	maxNamespaceNameLength = 128
	// maxNamespaceAndGroupBytes: "The combined length of a rule group namespace and a
	// rule group name cannot exceed 721 UTF-8 bytes" (CreateRuleGroupsNamespace).
	maxNamespaceAndGroupBytes = 721
	// maxReportedErrors bounds the errors of one rule file a message lists.
	maxReportedErrors = 10
)

// namespaceNameRe is the model's pattern for RuleGroupsNamespaceName, anchored: the name
// is a path segment and the last part of an ARN, so it holds no "/".
var namespaceNameRe = regexp.MustCompile(`^[0-9A-Za-z][-.0-9A-Z_a-z]*$`)

// ValidateNamespaceName checks a rule groups namespace name against AMP's model.
func ValidateNamespaceName(name string) error {
	if n := len(name); n < 1 || n > maxNamespaceNameLength {
		return awsapi.Validation("name", "name must be 1 to %d characters long, got %d", maxNamespaceNameLength, n)
	}
	if !namespaceNameRe.MatchString(name) {
		return awsapi.Validation("name", "name %q may hold only letters, digits and - . _, and must start with a letter or digit", name)
	}
	return nil
}

// ruleFileStats is what the quotas count in a rule file.
type ruleFileStats struct {
	groups, rules int
	// largestGroup is the group with the most rules, maxRules of them.
	largestGroup string
	maxRules     int
}

func statsOf(rgs *rulefmt.RuleGroups) ruleFileStats {
	var st ruleFileStats
	for _, g := range rgs.Groups {
		st.groups++
		st.rules += len(g.Rules)
		if len(g.Rules) > st.maxRules {
			st.maxRules, st.largestGroup = len(g.Rules), g.Name
		}
	}
	return st
}

// checkRuleFile validates the rule file of namespace as `promtool check rules` does
// (YAML and unknown fields, unique group names, record/alert names, PromQL, label and
// annotation templates, for/keep_firing_for only on alerting rules) and as AMP does
// (size, group intervals). Its errors are *awsapi.Error values.
func checkRuleFile(data []byte, namespace string, p parser.Parser, l *limits.Limits) (_ *rulefmt.RuleGroups, err error) {
	defer func() {
		if r := recover(); r != nil { // as in checkDefinition
			err = awsapi.Validation("data", "the rule file could not be checked: %v", r)
		}
	}()
	if err := checkRuleFileSize(namespace, len(data), l); err != nil {
		return nil, err
	}
	rgs, errs := rulefmt.Parse(data, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return nil, awsapi.Validation("data", "data is not a valid Prometheus rule file: %s", joinErrors(errs))
	}
	if err := checkGroups(rgs, namespace, l); err != nil {
		return nil, err
	}
	return rgs, nil
}

func checkRuleFileSize(namespace string, size int, l *limits.Limits) error {
	if max := l.RulerMaxNamespaceSizeBytes; max > 0 && size > max {
		return awsapi.QuotaExceeded("RuleGroupsNamespace", namespace, quotaNamespaceFileSize,
			"Limit exceeded. Maximum rule groups namespace definition file size: the rule file is %d bytes, the limit is %d (ruler_max_namespace_size_bytes)", size, max)
	}
	return nil
}

// decodeRuleFile reads a stored rule file for its counts and intervals, without the
// PromQL and template checks it passed when it was written.
func decodeRuleFile(data []byte) (*rulefmt.RuleGroups, error) {
	var rgs rulefmt.RuleGroups
	if err := yaml.Unmarshal(data, &rgs); err != nil {
		return nil, fmt.Errorf("decoding rule file: %w", err)
	}
	return &rgs, nil
}

// checkGroups applies AMP's checks that Prometheus does not make: the minimum evaluation
// interval, the length of namespace and group names together, a limit that is not
// negative.
func checkGroups(rgs *rulefmt.RuleGroups, namespace string, l *limits.Limits) error {
	for _, g := range rgs.Groups {
		if iv := time.Duration(g.Interval); iv != 0 && iv < l.RulerMinEvaluationInterval {
			return awsapi.Validation("data", "group %q: interval %s is shorter than the minimum rule evaluation interval of %s (ruler_min_evaluation_interval)",
				g.Name, g.Interval, model.Duration(l.RulerMinEvaluationInterval))
		}
		if g.Limit < 0 {
			return awsapi.Validation("data", "group %q: limit %d must not be negative", g.Name, g.Limit)
		}
		if n := len(namespace) + len(g.Name); n > maxNamespaceAndGroupBytes {
			return awsapi.Validation("data", "group %q: the namespace and group names are %d bytes together, more than %d", g.Name, n, maxNamespaceAndGroupBytes)
		}
	}
	return nil
}

// checkRuleQuotas checks the workspace-wide quotas with namespace holding a file of st,
// replacing its current file if any. Namespaces being deleted do not count.
func checkRuleQuotas(ws *meta.Workspace, namespace string, st ruleFileStats, l *limits.Limits) error {
	if max := l.RulerMaxRulesPerRuleGroup; max > 0 && st.maxRules > max {
		return awsapi.QuotaExceeded("RuleGroupsNamespace", namespace, "",
			"Limit exceeded. Maximum rules per rule group: group %q has %d rules, the limit is %d (ruler_max_rules_per_rule_group)", st.largestGroup, st.maxRules, max)
	}
	namespaces, groups, rules := 1, st.groups, st.rules
	for name, ns := range ws.RuleGroupsNamespaces {
		if name == namespace || ns.Status == meta.StatusDeleting {
			continue
		}
		namespaces++
		groups += ns.RuleGroups
		rules += ns.Rules
	}
	if max := l.RulerMaxRuleGroupsNamespaces; max > 0 && namespaces > max {
		return awsapi.QuotaExceeded("RuleGroupsNamespace", namespace, "",
			"Limit exceeded. Maximum rule groups namespaces per workspace: workspace %s would have %d, the limit is %d (ruler_max_rule_groups_namespaces)", ws.ID, namespaces, max)
	}
	if max := l.RulerMaxRuleGroupsPerWorkspace; max > 0 && groups > max {
		return awsapi.QuotaExceeded("RuleGroupsNamespace", namespace, "",
			"Limit exceeded. Maximum rule groups per workspace: workspace %s would have %d, the limit is %d (ruler_max_rule_groups_per_workspace)", ws.ID, groups, max)
	}
	if max := l.RulerMaxRulesPerWorkspace; max > 0 && rules > max {
		return awsapi.QuotaExceeded("RuleGroupsNamespace", namespace, quotaRulesPerWorkspace,
			"Limit exceeded. Maximum rules per workspace: workspace %s would have %d, the limit is %d (ruler_max_rules_per_workspace)", ws.ID, rules, max)
	}
	return nil
}

// recheckNamespace checks a stored namespace that is being created or updated against
// the limits in force now, for the reconciler; it returns why the namespace cannot
// become ACTIVE, or "".
func recheckNamespace(ws *meta.Workspace, name string, ns *meta.RuleGroupsNamespace, l *limits.Limits) string {
	if err := checkRuleFileSize(name, len(ns.Data), l); err != nil {
		return reason(err)
	}
	rgs, err := decodeRuleFile(ns.Data)
	if err != nil {
		return err.Error()
	}
	if err := checkGroups(rgs, name, l); err != nil {
		return reason(err)
	}
	if err := checkRuleQuotas(ws, name, statsOf(rgs), l); err != nil {
		return reason(err)
	}
	return ""
}

// reason is the statusReason for err: the message of an AWS error, else the error.
func reason(err error) string {
	if e := awsapi.As(err); e != nil {
		return e.Message
	}
	return err.Error()
}

// joinErrors lists the first maxReportedErrors errors of a rule file. rulefmt's name
// their line and column, group, rule index and rule name.
func joinErrors(errs []error) string {
	msgs := make([]string, 0, min(len(errs), maxReportedErrors))
	for i, err := range errs {
		if i == maxReportedErrors {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(errs)-i))
			break
		}
		msgs = append(msgs, err.Error())
	}
	return strings.Join(msgs, "; ")
}
