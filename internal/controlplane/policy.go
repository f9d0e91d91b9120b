package controlplane

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/stratametrics/strata/internal/auth/policy"
	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/meta"
)

// maxPolicyBytes caps a resource policy document, as IAM caps resource policies.
const maxPolicyBytes = 20 << 10

const policyStatusActive = "ACTIVE"

type putResourcePolicyRequest struct {
	PolicyDocument *string `json:"policyDocument"`
	ClientToken    *string `json:"clientToken"`
	RevisionID     *string `json:"revisionId"`
}

type putResourcePolicyResponse struct {
	PolicyStatus string `json:"policyStatus"`
	RevisionID   string `json:"revisionId"`
}

type describeResourcePolicyResponse struct {
	PolicyDocument string `json:"policyDocument"`
	PolicyStatus   string `json:"policyStatus"`
	RevisionID     string `json:"revisionId"`
}

func policyNotFound(id string) error {
	return awsapi.NotFound("ResourcePolicy", id, "workspace %s has no resource policy", id)
}

func checkRevision(ws *meta.Workspace, revision *string) error {
	if revision == nil {
		return nil
	}
	if ws.ResourcePolicy == nil || ws.ResourcePolicy.RevisionID != *revision {
		return awsapi.Conflict("ResourcePolicy", ws.ID, "revisionId %q does not match the current revision of the resource policy of workspace %s", *revision, ws.ID)
	}
	return nil
}

func (a *API) putResourcePolicy(w http.ResponseWriter, r *http.Request) error {
	var req putResourcePolicyRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return err
	}
	if req.PolicyDocument == nil || *req.PolicyDocument == "" {
		return awsapi.Validation("policyDocument", "policyDocument is required")
	}
	if len(*req.PolicyDocument) > maxPolicyBytes {
		return awsapi.Validation("policyDocument", "policyDocument is %d bytes long, more than the limit of %d", len(*req.PolicyDocument), maxPolicyBytes)
	}
	if _, err := policy.ParseResourcePolicy([]byte(*req.PolicyDocument)); err != nil {
		return awsapi.Validation("policyDocument", "policyDocument is not a valid resource policy: %v", err)
	}
	revision := uuid.NewString()
	_, err := a.updateWorkspace(r, func(ws *meta.Workspace) error {
		if err := requireStatus(ws, "PutResourcePolicy", meta.StatusActive); err != nil {
			return err
		}
		if err := checkRevision(ws, req.RevisionID); err != nil {
			return err
		}
		ws.ResourcePolicy = &meta.ResourcePolicy{Document: *req.PolicyDocument, RevisionID: revision, UpdatedAt: a.now().UTC()}
		return nil
	})
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusAccepted, putResourcePolicyResponse{PolicyStatus: policyStatusActive, RevisionID: revision})
	return nil
}

func (a *API) describeResourcePolicy(w http.ResponseWriter, r *http.Request) error {
	ws, err := a.getWorkspace(r)
	if err != nil {
		return err
	}
	if ws.ResourcePolicy == nil {
		return policyNotFound(ws.ID)
	}
	awsapi.WriteJSON(w, http.StatusOK, describeResourcePolicyResponse{
		PolicyDocument: ws.ResourcePolicy.Document,
		PolicyStatus:   policyStatusActive,
		RevisionID:     ws.ResourcePolicy.RevisionID,
	})
	return nil
}

func (a *API) deleteResourcePolicy(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Has("clientToken") {
		t := q.Get("clientToken")
		if err := validateClientToken(&t); err != nil {
			return err
		}
	}
	var revision *string
	if q.Has("revisionId") {
		v := q.Get("revisionId")
		revision = &v
	}
	_, err := a.updateWorkspace(r, func(ws *meta.Workspace) error {
		if ws.ResourcePolicy == nil {
			return policyNotFound(ws.ID)
		}
		if err := checkRevision(ws, revision); err != nil {
			return err
		}
		ws.ResourcePolicy = nil
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}
