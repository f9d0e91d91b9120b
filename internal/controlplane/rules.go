package controlplane

// Rule groups namespaces: one Prometheus rule file each, stored in the workspace's record.
//
//	Create ──▶ CREATING ──┐                      ┌──▶ ACTIVE
//	Put    ──▶ UPDATING ──┴─ Reconciler rechecks ┴──▶ CREATION_FAILED / UPDATE_FAILED
//	Delete ──▶ DELETING ───── Reconciler removes it from the record
//
// Every check runs before the write, so a request that is answered 202 normally becomes
// ACTIVE; the Reconciler checks the quotas again, in case they were lowered meanwhile.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/meta"
)

// errUnchanged ends an update that has nothing to write: an idempotent retry.
var errUnchanged = errors.New("unchanged")

// decodeBlob decodes a required blob member (base64 in JSON).
// ruleFile decodes a request's rule file for namespace name of the path's workspace and
// checks it with the workspace's limits.
func (a *API) ruleFile(r *http.Request, name string, blob *string) (data []byte, workspace string, st ruleFileStats, err error) {
	if data, err = decodeBlob("data", blob); err != nil {
		return nil, "", st, err
	}
	workspace = r.PathValue("workspaceId")
	if err := validateWorkspaceID(workspace); err != nil {
		return nil, "", st, err
	}
	rgs, err := checkRuleFile(data, name, a.PromQL, a.limitsFor(workspace))
	if err != nil {
		return nil, "", st, err
	}
	return data, workspace, statsOf(rgs), nil
}

func decodeBlob(field string, v *string) ([]byte, error) {
	if v == nil || *v == "" {
		return nil, awsapi.Validation(field, "%s is required", field)
	}
	b, err := base64.StdEncoding.DecodeString(*v)
	if err != nil {
		return nil, awsapi.Validation(field, "%s is not base64: %v", field, err)
	}
	if len(b) == 0 {
		return nil, awsapi.Validation(field, "%s is required", field)
	}
	return b, nil
}

// hashRequest identifies the parameters of an operation, for clientToken idempotency.
func hashRequest(operation string, params any) string {
	b, _ := json.Marshal(params) // maps marshal with sorted keys: the hash is stable
	sum := sha256.Sum256(append([]byte(operation+"\x00"), b...))
	return hex.EncodeToString(sum[:])
}

// namespaceARN is the ARN of ws's namespace name: arn:…:rulegroupsnamespace/<id>/<name>,
// in the workspace's region and account.
func (a *API) namespaceARN(ws *meta.Workspace, name string) string {
	if prefix, id, ok := strings.Cut(ws.ARN, ":workspace/"); ok {
		return prefix + ":rulegroupsnamespace/" + id + "/" + name
	}
	return fmt.Sprintf("arn:aws:aps:%s:%s:rulegroupsnamespace/%s/%s", a.env.Region, a.accountOf(ws), ws.ID, name)
}

func namespaceNotFound(ws, name string) error {
	return awsapi.NotFound("RuleGroupsNamespace", name, "rule groups namespace %s not found in workspace %s", name, ws)
}

// pathNamespace is the valid {name} of the path.
func pathNamespace(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := ValidateNamespaceName(name); err != nil {
		return "", err
	}
	return name, nil
}

func namespaceStatus(ns *meta.RuleGroupsNamespace) ruleGroupsNamespaceStatus {
	return ruleGroupsNamespaceStatus{StatusCode: ns.Status, StatusReason: ns.StatusReason}
}

func namespaceResponse(ns *meta.RuleGroupsNamespace) ruleGroupsNamespaceResponse {
	return ruleGroupsNamespaceResponse{Name: ns.Name, ARN: ns.ARN, Status: namespaceStatus(ns), Tags: ns.Tags}
}

func (a *API) createRuleGroupsNamespace(w http.ResponseWriter, r *http.Request) error {
	var req createRuleGroupsNamespaceRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return awsapi.Validation("name", "name is required")
	}
	name := *req.Name
	if err := ValidateNamespaceName(name); err != nil {
		return err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return err
	}
	if err := validateTags(req.Tags); err != nil {
		return err
	}
	data, _, st, err := a.ruleFile(r, name, req.Data)
	if err != nil {
		return err
	}
	ws, err := a.getWorkspace(r)
	if err != nil {
		return err
	}
	// Tagging on create is also a TagResource on the new namespace, as in AWS.
	if len(req.Tags) > 0 && a.Authorize != nil {
		if err := a.Authorize(r, "aps:TagResource", a.namespaceARN(&ws, name)); err != nil {
			return err
		}
	}
	hash := hashRequest("CreateRuleGroupsNamespace", struct {
		Name string
		Data []byte
		Tags map[string]string
	}{name, data, req.Tags})
	var out meta.RuleGroupsNamespace
	_, err = a.updateWorkspace(r, func(ws *meta.Workspace) error {
		if req.ClientToken != nil {
			for _, ns := range ws.RuleGroupsNamespaces {
				if ns.ClientToken != *req.ClientToken {
					continue
				}
				if ns.RequestHash != hash {
					return awsapi.Conflict("RuleGroupsNamespace", ns.Name, "clientToken %q was already used for rule groups namespace %s with other parameters", *req.ClientToken, ns.Name)
				}
				out = *ns
				return errUnchanged
			}
		}
		if err := requireStatus(ws, "CreateRuleGroupsNamespace", meta.StatusActive); err != nil {
			return err
		}
		if _, ok := ws.RuleGroupsNamespaces[name]; ok {
			return awsapi.Conflict("RuleGroupsNamespace", name, "rule groups namespace %s already exists in workspace %s; use PutRuleGroupsNamespace to replace its rules", name, ws.ID)
		}
		if err := checkRuleQuotas(ws, name, st, a.limitsFor(ws.ID)); err != nil {
			return err
		}
		now := a.now().UTC()
		ns := &meta.RuleGroupsNamespace{
			Name:        name,
			ARN:         a.namespaceARN(ws, name),
			Data:        data,
			Status:      meta.StatusCreating,
			CreatedAt:   now,
			ModifiedAt:  now,
			Tags:        req.Tags,
			RuleGroups:  st.groups,
			Rules:       st.rules,
			RequestHash: hash,
		}
		if req.ClientToken != nil {
			ns.ClientToken = *req.ClientToken
		}
		if ws.RuleGroupsNamespaces == nil {
			ws.RuleGroupsNamespaces = map[string]*meta.RuleGroupsNamespace{}
		}
		ws.RuleGroupsNamespaces[name] = ns
		out = *ns
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	if err == nil {
		a.logger.Info("rule groups namespace created", "workspace", ws.ID, "namespace", name, "groups", st.groups, "rules", st.rules)
	}
	awsapi.WriteJSON(w, http.StatusAccepted, namespaceResponse(&out))
	return nil
}

func (a *API) describeRuleGroupsNamespace(w http.ResponseWriter, r *http.Request) error {
	name, err := pathNamespace(r)
	if err != nil {
		return err
	}
	ws, err := a.getWorkspace(r)
	if err != nil {
		return err
	}
	ns, ok := ws.RuleGroupsNamespaces[name]
	if !ok {
		return namespaceNotFound(ws.ID, name)
	}
	awsapi.WriteJSON(w, http.StatusOK, describeRuleGroupsNamespaceResponse{RuleGroupsNamespace: ruleGroupsNamespaceDescription{
		ARN:        ns.ARN,
		Name:       ns.Name,
		Status:     namespaceStatus(ns),
		Data:       ns.Data,
		CreatedAt:  awsapi.Timestamp(ns.CreatedAt),
		ModifiedAt: awsapi.Timestamp(ns.ModifiedAt),
		Tags:       ns.Tags,
	}})
	return nil
}

func (a *API) putRuleGroupsNamespace(w http.ResponseWriter, r *http.Request) error {
	name, err := pathNamespace(r)
	if err != nil {
		return err
	}
	var req putRuleGroupsNamespaceRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return err
	}
	data, id, st, err := a.ruleFile(r, name, req.Data)
	if err != nil {
		return err
	}
	hash := hashRequest("PutRuleGroupsNamespace", struct {
		Name string
		Data []byte
	}{name, data})
	var out meta.RuleGroupsNamespace
	_, err = a.updateWorkspace(r, func(ws *meta.Workspace) error {
		ns, ok := ws.RuleGroupsNamespaces[name]
		if !ok {
			return namespaceNotFound(ws.ID, name)
		}
		if req.ClientToken != nil && ns.ClientToken == *req.ClientToken {
			if ns.RequestHash != hash {
				return awsapi.Conflict("RuleGroupsNamespace", name, "clientToken %q was already used for rule groups namespace %s with other parameters", *req.ClientToken, name)
			}
			out = *ns
			return errUnchanged
		}
		if err := requireStatus(ws, "PutRuleGroupsNamespace", meta.StatusActive); err != nil {
			return err
		}
		switch ns.Status {
		case meta.StatusActive, meta.StatusCreationFailed, meta.StatusUpdateFailed:
		default:
			return awsapi.Conflict("RuleGroupsNamespace", name, "rule groups namespace %s is %s; retry when it is ACTIVE", name, ns.Status)
		}
		if err := checkRuleQuotas(ws, name, st, a.limitsFor(ws.ID)); err != nil {
			return err
		}
		ns.Data = data
		ns.Status, ns.StatusReason = meta.StatusUpdating, ""
		ns.ModifiedAt = a.now().UTC()
		ns.RuleGroups, ns.Rules = st.groups, st.rules
		ns.ClientToken, ns.RequestHash = "", hash
		if req.ClientToken != nil {
			ns.ClientToken = *req.ClientToken
		}
		out = *ns
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	if err == nil {
		a.logger.Info("rule groups namespace updated", "workspace", id, "namespace", name, "groups", st.groups, "rules", st.rules)
	}
	awsapi.WriteJSON(w, http.StatusAccepted, namespaceResponse(&out))
	return nil
}

// queryClientToken is the optional clientToken of a DELETE's query string.
func queryClientToken(r *http.Request) (*string, error) {
	q := r.URL.Query()
	if !q.Has("clientToken") {
		return nil, nil
	}
	t := q.Get("clientToken")
	if err := validateClientToken(&t); err != nil {
		return nil, err
	}
	return &t, nil
}

func (a *API) deleteRuleGroupsNamespace(w http.ResponseWriter, r *http.Request) error {
	name, err := pathNamespace(r)
	if err != nil {
		return err
	}
	token, err := queryClientToken(r)
	if err != nil {
		return err
	}
	_, err = a.updateWorkspace(r, func(ws *meta.Workspace) error {
		ns, ok := ws.RuleGroupsNamespaces[name]
		if !ok {
			return namespaceNotFound(ws.ID, name)
		}
		if ns.Status == meta.StatusDeleting {
			if token != nil && *token == ns.DeleteClientToken {
				return errUnchanged
			}
			return awsapi.Conflict("RuleGroupsNamespace", name, "rule groups namespace %s is already being deleted", name)
		}
		ns.Status, ns.StatusReason = meta.StatusDeleting, ""
		ns.DeleteClientToken = ""
		if token != nil {
			ns.DeleteClientToken = *token
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	if err == nil {
		a.logger.Info("rule groups namespace deletion requested", "workspace", r.PathValue("workspaceId"), "namespace", name)
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (a *API) listRuleGroupsNamespaces(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	maxResults := defaultMaxResults
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxMaxResults {
			return awsapi.Validation("maxResults", "maxResults must be an integer from 1 to %d, got %q", maxMaxResults, v)
		}
		maxResults = n
	}
	prefix := ""
	if q.Has("name") {
		prefix = q.Get("name")
		if n := utf8.RuneCountInString(prefix); n < 1 || n > maxNamespaceNameLength {
			return awsapi.Validation("name", "name must be 1 to %d characters long, got %d", maxNamespaceNameLength, n)
		}
	}
	after := ""
	if v := q.Get("nextToken"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(v) > 1000 || ValidateNamespaceName(string(b)) != nil {
			return awsapi.Validation("nextToken", "nextToken is not a token returned by ListRuleGroupsNamespaces")
		}
		after = string(b)
	}
	ws, err := a.getWorkspace(r)
	if err != nil {
		return err
	}
	// Names order the list, so pages stay stable while namespaces come and go.
	names := make([]string, 0, len(ws.RuleGroupsNamespaces))
	for name := range ws.RuleGroupsNamespaces {
		if strings.HasPrefix(name, prefix) && name > after {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	resp := listRuleGroupsNamespacesResponse{RuleGroupsNamespaces: []ruleGroupsNamespaceSummary{}}
	if len(names) > maxResults {
		names = names[:maxResults]
		resp.NextToken = base64.RawURLEncoding.EncodeToString([]byte(names[len(names)-1]))
	}
	for _, name := range names {
		ns := ws.RuleGroupsNamespaces[name]
		resp.RuleGroupsNamespaces = append(resp.RuleGroupsNamespaces, ruleGroupsNamespaceSummary{
			ARN:        ns.ARN,
			Name:       ns.Name,
			Status:     namespaceStatus(ns),
			CreatedAt:  awsapi.Timestamp(ns.CreatedAt),
			ModifiedAt: awsapi.Timestamp(ns.ModifiedAt),
			Tags:       ns.Tags,
		})
	}
	awsapi.WriteJSON(w, http.StatusOK, resp)
	return nil
}
