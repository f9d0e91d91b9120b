package ruler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/stratametrics/strata/internal/meta"
)

// Route is one HTTP endpoint of the ruler with its AMP operation.
type Route struct {
	// Operation is the AMP operation name; the IAM action is "aps:" + Operation.
	Operation string
	Method    string
	// Pattern is a net/http ServeMux path pattern.
	Pattern string
	Handler http.HandlerFunc
}

// Routes returns Prometheus' /api/v1/rules and /api/v1/alerts per workspace, as AMP
// serves them (aps:ListRules, aps:ListAlerts).
func (r *Ruler) Routes() []Route {
	const p = "/workspaces/{workspaceId}/api/v1/"
	return []Route{
		{"ListRules", http.MethodGet, p + "rules", r.serveRules},
		{"ListRules", http.MethodPost, p + "rules", r.serveRules},
		{"ListAlerts", http.MethodGet, p + "alerts", r.serveAlerts},
		{"ListAlerts", http.MethodPost, p + "alerts", r.serveAlerts},
	}
}

// The JSON of Prometheus' rules and alerts API (web/api/v1), which Grafana and
// promtool read.
type (
	apiAlertDiscovery struct {
		Alerts []*apiAlert `json:"alerts"`
	}
	apiAlert struct {
		Labels          labels.Labels `json:"labels"`
		Annotations     labels.Labels `json:"annotations"`
		State           string        `json:"state"`
		ActiveAt        *time.Time    `json:"activeAt,omitempty"`
		KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
		Value           string        `json:"value"`
	}
	apiRuleDiscovery struct {
		RuleGroups     []*apiRuleGroup `json:"groups"`
		GroupNextToken string          `json:"groupNextToken,omitempty"`
	}
	apiRuleGroup struct {
		Name           string    `json:"name"`
		File           string    `json:"file"`
		Rules          []any     `json:"rules"`
		Interval       float64   `json:"interval"`
		Limit          int       `json:"limit"`
		EvaluationTime float64   `json:"evaluationTime"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	}
	apiAlertingRule struct {
		State          string           `json:"state"`
		Name           string           `json:"name"`
		Query          string           `json:"query"`
		Duration       float64          `json:"duration"`
		KeepFiringFor  float64          `json:"keepFiringFor"`
		Labels         labels.Labels    `json:"labels"`
		Annotations    labels.Labels    `json:"annotations"`
		Alerts         []*apiAlert      `json:"alerts"`
		Health         rules.RuleHealth `json:"health"`
		LastError      string           `json:"lastError,omitempty"`
		EvaluationTime float64          `json:"evaluationTime"`
		LastEvaluation time.Time        `json:"lastEvaluation"`
		Type           string           `json:"type"`
	}
	apiRecordingRule struct {
		Name           string           `json:"name"`
		Query          string           `json:"query"`
		Labels         labels.Labels    `json:"labels"`
		Health         rules.RuleHealth `json:"health"`
		LastError      string           `json:"lastError,omitempty"`
		EvaluationTime float64          `json:"evaluationTime"`
		LastEvaluation time.Time        `json:"lastEvaluation"`
		Type           string           `json:"type"`
	}
)

func toAPIAlerts(as []*rules.Alert) []*apiAlert {
	out := make([]*apiAlert, len(as))
	for i, a := range as {
		out[i] = &apiAlert{
			Labels:      a.Labels,
			Annotations: a.Annotations,
			State:       a.State.String(),
			ActiveAt:    &a.ActiveAt,
			Value:       strconv.FormatFloat(a.Value, 'e', -1, 64),
		}
		if !a.KeepFiringSince.IsZero() {
			out[i].KeepFiringSince = &a.KeepFiringSince
		}
	}
	return out
}

// workspaceGroups answers a workspace that does not exist with 404 and returns nil, ok
// false; otherwise the workspace's running groups.
func (r *Ruler) workspaceGroups(w http.ResponseWriter, req *http.Request) ([]*rules.Group, bool) {
	id := req.PathValue("workspaceId")
	ws, ok := r.deps.Store.PeekWorkspace(id)
	if !ok || ws.Status == meta.StatusDeleting || ws.Status == meta.StatusCreationFailed {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("workspace %s not found", id))
		return nil, false
	}
	return r.groups(id), true
}

func (r *Ruler) serveAlerts(w http.ResponseWriter, req *http.Request) {
	groups, ok := r.workspaceGroups(w, req)
	if !ok {
		return
	}
	res := apiAlertDiscovery{Alerts: []*apiAlert{}}
	for _, g := range groups {
		for _, a := range g.AlertingRules() {
			res.Alerts = append(res.Alerts, toAPIAlerts(a.ActiveAlerts())...)
		}
	}
	writeData(w, res)
}

// serveRules answers as Prometheus does, with its filters (type, rule_name[],
// rule_group[], file[], match[], exclude_alerts) and pagination (group_limit,
// group_next_token). A group's file is its namespace's name.
func (r *Ruler) serveRules(w http.ResponseWriter, req *http.Request) {
	if err := req.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", "error parsing form values: "+err.Error())
		return
	}
	badParam := func(name string, err error) {
		writeError(w, http.StatusBadRequest, "bad_data", fmt.Sprintf("invalid parameter %q: %v", name, err))
	}
	set := func(vs []string) map[string]bool {
		m := make(map[string]bool, len(vs))
		for _, v := range vs {
			m[v] = true
		}
		return m
	}
	names, groupNames, files := set(req.Form["rule_name[]"]), set(req.Form["rule_group[]"]), set(req.Form["file[]"])
	matchers, err := r.parser.ParseMetricSelectors(req.Form["match[]"])
	if err != nil {
		badParam("match[]", err)
		return
	}
	for _, ms := range matchers {
		if !nonEmpty(ms) {
			badParam("match[]", errors.New("match[] must contain at least one non-empty matcher"))
			return
		}
	}
	typ := strings.ToLower(req.Form.Get("type"))
	if typ != "" && typ != "alert" && typ != "record" {
		badParam("type", fmt.Errorf("not supported value %q", typ))
		return
	}
	excludeAlerts := false
	if s := req.Form.Get("exclude_alerts"); s != "" {
		if excludeAlerts, err = strconv.ParseBool(strings.ToLower(s)); err != nil {
			badParam("exclude_alerts", fmt.Errorf("error converting exclude_alerts: %w", err))
			return
		}
	}
	maxGroups, token := int64(-1), req.Form.Get("group_next_token")
	if s := req.Form.Get("group_limit"); s != "" {
		if maxGroups, err = strconv.ParseInt(s, 10, 32); err != nil {
			badParam("group_limit", fmt.Errorf("group_limit needs to be a valid number: %w", err))
			return
		}
		if maxGroups <= 0 {
			badParam("group_limit", errors.New("group_limit needs to be greater than 0"))
			return
		}
	} else if token != "" {
		badParam("group_next_token", errors.New("group_limit needs to be present in order to paginate over the groups"))
		return
	}

	groups, ok := r.workspaceGroups(w, req)
	if !ok {
		return
	}
	res := apiRuleDiscovery{RuleGroups: []*apiRuleGroup{}}
	found := token == ""
	for _, g := range groups {
		file := namespaceOf(g.File())
		if !found {
			if groupToken(file, g.Name()) != token {
				continue
			}
			found = true
		}
		if (len(groupNames) > 0 && !groupNames[g.Name()]) || (len(files) > 0 && !files[file]) {
			continue
		}
		ag := &apiRuleGroup{
			Name:           g.Name(),
			File:           file,
			Interval:       g.Interval().Seconds(),
			Limit:          g.Limit(),
			Rules:          []any{},
			EvaluationTime: g.GetEvaluationTime().Seconds(),
			LastEvaluation: g.GetLastEvaluation(),
		}
		for _, rule := range g.Rules(matchers...) {
			if len(names) > 0 && !names[rule.Name()] {
				continue
			}
			lastError := ""
			if err := rule.LastError(); err != nil {
				lastError = err.Error()
			}
			switch rule := rule.(type) {
			case *rules.AlertingRule:
				if typ == "record" {
					continue
				}
				var alerts []*apiAlert
				if !excludeAlerts {
					alerts = toAPIAlerts(rule.ActiveAlerts())
				}
				ag.Rules = append(ag.Rules, apiAlertingRule{
					State:          rule.State().String(),
					Name:           rule.Name(),
					Query:          rule.Query().String(),
					Duration:       rule.HoldDuration().Seconds(),
					KeepFiringFor:  rule.KeepFiringFor().Seconds(),
					Labels:         rule.Labels(),
					Annotations:    rule.Annotations(),
					Alerts:         alerts,
					Health:         rule.Health(),
					LastError:      lastError,
					EvaluationTime: rule.GetEvaluationDuration().Seconds(),
					LastEvaluation: rule.GetEvaluationTimestamp(),
					Type:           "alerting",
				})
			case *rules.RecordingRule:
				if typ == "alert" {
					continue
				}
				ag.Rules = append(ag.Rules, apiRecordingRule{
					Name:           rule.Name(),
					Query:          rule.Query().String(),
					Labels:         rule.Labels(),
					Health:         rule.Health(),
					LastError:      lastError,
					EvaluationTime: rule.GetEvaluationDuration().Seconds(),
					LastEvaluation: rule.GetEvaluationTimestamp(),
					Type:           "recording",
				})
			}
		}
		// A group whose rules were all filtered out is left out, as in Prometheus.
		if len(ag.Rules) == 0 {
			continue
		}
		if maxGroups > 0 && len(res.RuleGroups) == int(maxGroups) {
			res.GroupNextToken = groupToken(file, g.Name())
			break
		}
		res.RuleGroups = append(res.RuleGroups, ag)
	}
	if !found {
		badParam("group_next_token", fmt.Errorf("invalid group_next_token '%v'. were rule groups changed?", token))
		return
	}
	writeData(w, res)
}

func nonEmpty(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if m != nil && !m.Matches("") {
			return true
		}
	}
	return false
}

// namespaceOf is the namespace name of a group's identifier "<workspace>/<namespace>".
func namespaceOf(identifier string) string {
	_, ns, _ := strings.Cut(identifier, "/")
	return ns
}

// groupToken is a page's next token, computed as Prometheus computes it.
func groupToken(file, group string) string {
	sum := sha256.Sum256([]byte(file + ";" + group))
	return hex.EncodeToString(sum[:])
}

func writeData(w http.ResponseWriter, data any) {
	b, err := json.Marshal(struct {
		Status string `json:"status"`
		Data   any    `json:"data"`
	}{"success", data})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	b, _ := json.Marshal(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", typ, msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
