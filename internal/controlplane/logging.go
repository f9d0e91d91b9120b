package controlplane

// A workspace's logging configuration (where its rule, alerting and ingestion events
// are logged) and query logging configuration (where its costly queries are): one of
// each per workspace, stored in the workspace's record, moved through the same states
// as a rule groups namespace. The reconciler makes a configuration ACTIVE once the
// log sink accepts its log group (LogGroups), else CREATION_FAILED/UPDATE_FAILED.

import (
	"context"
	"errors"
	"net/http"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/vendedlogs"
)

// LogGroups checks that records can be sent to a log group; *vendedlogs.Logs implements
// it.
type LogGroups interface {
	CheckLogGroup(ctx context.Context, arn string) error
}

// loggingKind is one of the two configurations.
type loggingKind struct {
	resource string // the resource type in errors, and the operations' suffix
	what     string // in messages
	field    func(*meta.Workspace) **meta.LoggingConfiguration
	// read decodes and validates the body of a Create or Update.
	read func(a *API, r *http.Request, operation string) (loggingRequest, error)
}

var (
	workspaceLogging = loggingKind{"LoggingConfiguration", "logging configuration",
		func(ws *meta.Workspace) **meta.LoggingConfiguration { return &ws.Logging }, (*API).readLoggingRequest}
	queryLogging = loggingKind{"QueryLoggingConfiguration", "query logging configuration",
		func(ws *meta.Workspace) **meta.LoggingConfiguration { return &ws.QueryLogging }, (*API).readQueryLoggingRequest}
)

// loggingCreate, loggingUpdate and loggingDelete are the Create, Update and Delete
// operations of a kind.
func (a *API) loggingCreate(k loggingKind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		req, err := k.read(a, r, "Create"+k.resource)
		if err != nil {
			return err
		}
		return a.createLogging(w, r, k, req)
	}
}

func (a *API) loggingUpdate(k loggingKind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		req, err := k.read(a, r, "Update"+k.resource)
		if err != nil {
			return err
		}
		return a.updateLogging(w, r, k, req)
	}
}

func (a *API) loggingDelete(k loggingKind) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error { return a.deleteLogging(w, r, k) }
}

func (k loggingKind) notFound(ws string) error {
	return awsapi.NotFound(k.resource, ws, "workspace %s has no %s", ws, k.what)
}

// loggingRequest is a validated Create or Update of either kind.
type loggingRequest struct {
	logGroup string
	qsp      int64
	token    *string
	hash     string
}

// checkLogGroup validates a log group ARN: AMP's pattern, and the workspace's own
// account and the server's region, so that one account's records never reach another
// account's log group.
func (a *API) checkLogGroup(field, arn string, ws *meta.Workspace) error {
	region, account, _, err := vendedlogs.ParseLogGroupARN(arn)
	if err != nil {
		return awsapi.Validation(field, "%v", err)
	}
	if account != a.accountOf(ws) || region != a.env.Region {
		return awsapi.Validation(field, "log group %s is not in the workspace's account (%s) and region (%s)", arn, a.accountOf(ws), a.env.Region)
	}
	return nil
}

// logGroupExists asks the log sink about a log group before a configuration names it.
func (a *API) logGroupExists(r *http.Request, field, arn string) error {
	if _, _, _, err := vendedlogs.ParseLogGroupARN(arn); err != nil {
		return awsapi.Validation(field, "%v", err)
	}
	if a.LogGroups == nil {
		return nil
	}
	if err := a.LogGroups.CheckLogGroup(r.Context(), arn); err != nil {
		if r.Context().Err() != nil {
			return r.Context().Err()
		}
		return awsapi.Validation(field, "log group %s: %v", arn, err)
	}
	return nil
}

func (a *API) readLoggingRequest(r *http.Request, operation string) (loggingRequest, error) {
	var req loggingConfigurationRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return loggingRequest{}, err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return loggingRequest{}, err
	}
	if req.LogGroupARN == nil {
		return loggingRequest{}, awsapi.Validation("logGroupArn", "logGroupArn is required")
	}
	return loggingRequest{logGroup: *req.LogGroupARN, token: req.ClientToken, hash: hashRequest(operation, *req.LogGroupARN)}, nil
}

func (a *API) readQueryLoggingRequest(r *http.Request, operation string) (loggingRequest, error) {
	var req queryLoggingConfigurationRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return loggingRequest{}, err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return loggingRequest{}, err
	}
	if len(req.Destinations) != 1 {
		return loggingRequest{}, awsapi.Validation("destinations", "destinations must hold exactly one destination, has %d", len(req.Destinations))
	}
	d := req.Destinations[0]
	if d.CloudWatchLogs == nil || d.CloudWatchLogs.LogGroupARN == nil {
		return loggingRequest{}, awsapi.Validation("destinations.0.cloudWatchLogs.logGroupArn", "destinations[0].cloudWatchLogs.logGroupArn is required")
	}
	if d.Filters == nil || d.Filters.QSPThreshold == nil {
		return loggingRequest{}, awsapi.Validation("destinations.0.filters.qspThreshold", "destinations[0].filters.qspThreshold is required")
	}
	if *d.Filters.QSPThreshold < 0 {
		return loggingRequest{}, awsapi.Validation("destinations.0.filters.qspThreshold", "qspThreshold must not be negative")
	}
	arn, qsp := *d.CloudWatchLogs.LogGroupARN, *d.Filters.QSPThreshold
	return loggingRequest{logGroup: arn, qsp: qsp, token: req.ClientToken, hash: hashRequest(operation, []any{arn, qsp})}, nil
}

// createLogging is CreateLoggingConfiguration and CreateQueryLoggingConfiguration.
func (a *API) createLogging(w http.ResponseWriter, r *http.Request, k loggingKind, req loggingRequest) error {
	if err := a.logGroupExists(r, "logGroupArn", req.logGroup); err != nil {
		return err
	}
	var out meta.LoggingConfiguration
	_, err := a.updateWorkspace(r, func(ws *meta.Workspace) error {
		field := k.field(ws)
		if c := *field; c != nil {
			if err := k.retried(c, req, ws.ID); err != nil {
				out = *c
				return err
			}
			// The model lists no ConflictException for these Creates.
			return awsapi.Validation("workspaceId", "workspace %s already has a %s; update or delete it", ws.ID, k.what)
		}
		if err := requireStatus(ws, "Create"+k.resource, meta.StatusActive); err != nil {
			return err
		}
		if err := a.checkLogGroup("logGroupArn", req.logGroup, ws); err != nil {
			return err
		}
		now := a.now().UTC()
		c := &meta.LoggingConfiguration{
			LogGroupARN:  req.logGroup,
			QSPThreshold: req.qsp,
			Status:       meta.StatusCreating,
			CreatedAt:    now,
			ModifiedAt:   now,
			RequestHash:  req.hash,
		}
		if req.token != nil {
			c.ClientToken = *req.token
		}
		*field = c
		out = *c
		return nil
	})
	return a.loggingAnswer(w, r, k, req, &out, err, "created")
}

// retried says whether a Create or Update repeats the last one of c with its clientToken:
// errUnchanged when it does with the same parameters, a conflict with others, nil when
// it is new.
func (k loggingKind) retried(c *meta.LoggingConfiguration, req loggingRequest, ws string) error {
	if req.token == nil || c.ClientToken != *req.token {
		return nil
	}
	if c.RequestHash != req.hash {
		return awsapi.Conflict(k.resource, ws, "clientToken %q was already used for the %s of workspace %s with other parameters", *req.token, k.what, ws)
	}
	return errUnchanged
}

// loggingAnswer answers a Create or Update with the configuration's status.
func (a *API) loggingAnswer(w http.ResponseWriter, r *http.Request, k loggingKind, req loggingRequest, out *meta.LoggingConfiguration, err error, done string) error {
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	if err == nil {
		a.logger.Info(k.what+" "+done, "workspace", r.PathValue("workspaceId"), "log_group", req.logGroup)
	}
	awsapi.WriteJSON(w, http.StatusAccepted, loggingStatusResponse{Status: loggingStatus(out)})
	return nil
}

// updateLogging is UpdateLoggingConfiguration and UpdateQueryLoggingConfiguration.
func (a *API) updateLogging(w http.ResponseWriter, r *http.Request, k loggingKind, req loggingRequest) error {
	if err := a.logGroupExists(r, "logGroupArn", req.logGroup); err != nil {
		return err
	}
	var out meta.LoggingConfiguration
	_, err := a.updateWorkspace(r, func(ws *meta.Workspace) error {
		c := *k.field(ws)
		if c == nil {
			return k.notFound(ws.ID)
		}
		if err := k.retried(c, req, ws.ID); err != nil {
			out = *c
			return err
		}
		if err := requireStatus(ws, "Update"+k.resource, meta.StatusActive); err != nil {
			return err
		}
		switch c.Status {
		case meta.StatusActive, meta.StatusCreationFailed, meta.StatusUpdateFailed:
		default:
			return awsapi.Conflict(k.resource, ws.ID, "the %s of workspace %s is %s; retry when it is ACTIVE", k.what, ws.ID, c.Status)
		}
		if err := a.checkLogGroup("logGroupArn", req.logGroup, ws); err != nil {
			return err
		}
		c.LogGroupARN, c.QSPThreshold = req.logGroup, req.qsp
		c.Status, c.StatusReason = meta.StatusUpdating, ""
		c.ModifiedAt = a.now().UTC()
		c.ClientToken, c.RequestHash = "", req.hash
		if req.token != nil {
			c.ClientToken = *req.token
		}
		out = *c
		return nil
	})
	return a.loggingAnswer(w, r, k, req, &out, err, "updated")
}

// deleteLogging is DeleteLoggingConfiguration and DeleteQueryLoggingConfiguration.
func (a *API) deleteLogging(w http.ResponseWriter, r *http.Request, k loggingKind) error {
	token, err := queryClientToken(r)
	if err != nil {
		return err
	}
	_, err = a.updateWorkspace(r, func(ws *meta.Workspace) error {
		c := *k.field(ws)
		if c == nil {
			return k.notFound(ws.ID)
		}
		if c.Status == meta.StatusDeleting {
			if token != nil && *token == c.DeleteClientToken {
				return errUnchanged
			}
			return awsapi.Conflict(k.resource, ws.ID, "the %s of workspace %s is already being deleted", k.what, ws.ID)
		}
		c.Status, c.StatusReason = meta.StatusDeleting, ""
		c.DeleteClientToken = ""
		if token != nil {
			c.DeleteClientToken = *token
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	if err == nil {
		a.logger.Info(k.what+" deletion requested", "workspace", r.PathValue("workspaceId"))
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func loggingStatus(c *meta.LoggingConfiguration) loggingConfigurationStatus {
	return loggingConfigurationStatus{StatusCode: c.Status, StatusReason: c.StatusReason}
}

func (a *API) describeLoggingConfiguration(w http.ResponseWriter, r *http.Request) error {
	ws, err := a.getWorkspace(r)
	if err != nil {
		return err
	}
	c := ws.Logging
	if c == nil {
		return workspaceLogging.notFound(ws.ID)
	}
	awsapi.WriteJSON(w, http.StatusOK, describeLoggingConfigurationResponse{LoggingConfiguration: loggingConfigurationMetadata{
		Status:      loggingStatus(c),
		Workspace:   ws.ID,
		LogGroupARN: c.LogGroupARN,
		CreatedAt:   awsapi.Timestamp(c.CreatedAt),
		ModifiedAt:  awsapi.Timestamp(c.ModifiedAt),
	}})
	return nil
}

func (a *API) describeQueryLoggingConfiguration(w http.ResponseWriter, r *http.Request) error {
	ws, err := a.getWorkspace(r)
	if err != nil {
		return err
	}
	c := ws.QueryLogging
	if c == nil {
		return queryLogging.notFound(ws.ID)
	}
	arn, qsp := c.LogGroupARN, c.QSPThreshold
	awsapi.WriteJSON(w, http.StatusOK, describeQueryLoggingConfigurationResponse{QueryLoggingConfiguration: queryLoggingConfigurationMetadata{
		Status:    loggingStatus(c),
		Workspace: ws.ID,
		Destinations: []loggingDestination{{
			CloudWatchLogs: &cloudWatchLogDestination{LogGroupARN: &arn},
			Filters:        &loggingFilter{QSPThreshold: &qsp},
		}},
		CreatedAt:  awsapi.Timestamp(c.CreatedAt),
		ModifiedAt: awsapi.Timestamp(c.ModifiedAt),
	}})
	return nil
}
