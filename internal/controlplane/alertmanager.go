package controlplane

// The alert manager definition: AMP's YAML document (alertmanager_config and
// template_files), one per workspace, stored in the workspace's record and moved through
// the same states as a rule groups namespace (rules.go). It is stored and described as
// uploaded, secrets included, as AMP does.

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/stratametrics/strata/internal/alertmanager"
	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/meta"
)

func definitionNotFound(ws string) error {
	return awsapi.NotFound("AlertManagerDefinition", ws, "workspace %s has no alert manager definition", ws)
}

func definitionStatus(d *meta.AlertManagerDefinition) alertManagerDefinitionStatus {
	return alertManagerDefinitionStatus{StatusCode: d.Status, StatusReason: d.StatusReason}
}

// definitionRequest is a validated CreateAlertManagerDefinition or
// PutAlertManagerDefinition.
type definitionRequest struct {
	workspace string
	data      []byte
	token     *string
	hash      string // of the operation and data, for clientToken idempotency
}

// readDefinitionRequest decodes and validates the body of a Create or Put.
func (a *API) readDefinitionRequest(r *http.Request, operation string) (definitionRequest, error) {
	var req alertManagerDefinitionRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return definitionRequest{}, err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return definitionRequest{}, err
	}
	data, err := decodeBlob("data", req.Data)
	if err != nil {
		return definitionRequest{}, err
	}
	id := r.PathValue("workspaceId")
	if err := validateWorkspaceID(id); err != nil {
		return definitionRequest{}, err
	}
	if err := checkDefinition(data, a.limitsFor(id)); err != nil {
		return definitionRequest{}, err
	}
	return definitionRequest{workspace: id, data: data, token: req.ClientToken, hash: hashRequest(operation, data)}, nil
}

func (a *API) createAlertManagerDefinition(w http.ResponseWriter, r *http.Request) error {
	req, err := a.readDefinitionRequest(r, "CreateAlertManagerDefinition")
	if err != nil {
		return err
	}
	token := req.token
	var out meta.AlertManagerDefinition
	_, err = a.updateWorkspace(r, func(ws *meta.Workspace) error {
		if d := ws.AlertManagerDefinition; d != nil {
			if token != nil && d.ClientToken == *token {
				if d.RequestHash != req.hash {
					return awsapi.Conflict("AlertManagerDefinition", ws.ID, "clientToken %q was already used for the alert manager definition of workspace %s with other parameters", *token, ws.ID)
				}
				out = *d
				return errUnchanged
			}
			return awsapi.Conflict("AlertManagerDefinition", ws.ID, "workspace %s already has an alert manager definition; use PutAlertManagerDefinition to replace it", ws.ID)
		}
		if err := requireStatus(ws, "CreateAlertManagerDefinition", meta.StatusActive); err != nil {
			return err
		}
		now := a.now().UTC()
		d := &meta.AlertManagerDefinition{
			Data:        req.data,
			Status:      meta.StatusCreating,
			CreatedAt:   now,
			ModifiedAt:  now,
			RequestHash: req.hash,
		}
		if token != nil {
			d.ClientToken = *token
		}
		ws.AlertManagerDefinition = d
		out = *d
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	if err == nil {
		a.logger.Info("alert manager definition created", "workspace", req.workspace)
	}
	awsapi.WriteJSON(w, http.StatusAccepted, alertManagerDefinitionResponse{Status: definitionStatus(&out)})
	return nil
}

func (a *API) describeAlertManagerDefinition(w http.ResponseWriter, r *http.Request) error {
	ws, err := a.getWorkspace(r)
	if err != nil {
		return err
	}
	d := ws.AlertManagerDefinition
	if d == nil {
		return definitionNotFound(ws.ID)
	}
	data, err := alertmanager.RedactDefinition(d.Data)
	if err != nil {
		return fmt.Errorf("workspace %s: redacting the alert manager definition: %w", ws.ID, err)
	}
	awsapi.WriteJSON(w, http.StatusOK, describeAlertManagerDefinitionResponse{AlertManagerDefinition: alertManagerDefinitionDescription{
		Status:     definitionStatus(d),
		Data:       data,
		CreatedAt:  awsapi.Timestamp(d.CreatedAt),
		ModifiedAt: awsapi.Timestamp(d.ModifiedAt),
	}})
	return nil
}

func (a *API) putAlertManagerDefinition(w http.ResponseWriter, r *http.Request) error {
	req, err := a.readDefinitionRequest(r, "PutAlertManagerDefinition")
	if err != nil {
		return err
	}
	token := req.token
	var out meta.AlertManagerDefinition
	_, err = a.updateWorkspace(r, func(ws *meta.Workspace) error {
		d := ws.AlertManagerDefinition
		if d == nil {
			return definitionNotFound(ws.ID)
		}
		if token != nil && d.ClientToken == *token {
			if d.RequestHash != req.hash {
				return awsapi.Conflict("AlertManagerDefinition", ws.ID, "clientToken %q was already used for the alert manager definition of workspace %s with other parameters", *token, ws.ID)
			}
			out = *d
			return errUnchanged
		}
		if err := requireStatus(ws, "PutAlertManagerDefinition", meta.StatusActive); err != nil {
			return err
		}
		switch d.Status {
		case meta.StatusActive, meta.StatusCreationFailed, meta.StatusUpdateFailed:
		default:
			return awsapi.Conflict("AlertManagerDefinition", ws.ID, "the alert manager definition of workspace %s is %s; retry when it is ACTIVE", ws.ID, d.Status)
		}
		d.Data = req.data
		d.Status, d.StatusReason = meta.StatusUpdating, ""
		d.ModifiedAt = a.now().UTC()
		d.ClientToken, d.RequestHash = "", req.hash
		if token != nil {
			d.ClientToken = *token
		}
		out = *d
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	if err == nil {
		a.logger.Info("alert manager definition updated", "workspace", req.workspace)
	}
	awsapi.WriteJSON(w, http.StatusAccepted, alertManagerDefinitionResponse{Status: definitionStatus(&out)})
	return nil
}

func (a *API) deleteAlertManagerDefinition(w http.ResponseWriter, r *http.Request) error {
	token, err := queryClientToken(r)
	if err != nil {
		return err
	}
	_, err = a.updateWorkspace(r, func(ws *meta.Workspace) error {
		d := ws.AlertManagerDefinition
		if d == nil {
			return definitionNotFound(ws.ID)
		}
		if d.Status == meta.StatusDeleting {
			if token != nil && *token == d.DeleteClientToken {
				return errUnchanged
			}
			return awsapi.Conflict("AlertManagerDefinition", ws.ID, "the alert manager definition of workspace %s is already being deleted", ws.ID)
		}
		d.Status, d.StatusReason = meta.StatusDeleting, ""
		d.DeleteClientToken = ""
		if token != nil {
			d.DeleteClientToken = *token
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	if err == nil {
		a.logger.Info("alert manager definition deletion requested", "workspace", r.PathValue("workspaceId"))
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}
