package controlplane

// Managed scrapers (CreateScraper and the 8 operations around it). A scraper belongs to
// its creator's account and is stored in its destination workspace's record; the
// reconciler makes it ACTIVE once this server can run it (Scrapers), and the scraper
// package runs it.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/meta"
	"github.com/stratametrics/strata/internal/scraper"
)

var (
	scraperIDRe    = regexp.MustCompile(`^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$`)
	scraperAliasRe = regexp.MustCompile(`^[0-9A-Za-z][-.0-9A-Z_a-z]{0,99}$`)
	clusterARNRe   = regexp.MustCompile(`^arn:aws[-a-z]*:eks:[-a-z0-9]+:[0-9]{12}:cluster/.+$`)
	subnetRe       = regexp.MustCompile(`^subnet-[0-9a-z]+$`)
	securityGroup  = regexp.MustCompile(`^sg-[0-9a-z]+$`)
	workspaceARNRe = regexp.MustCompile(`^arn:aws[-a-z]*:aps:([-a-z0-9]+):([0-9]{12}):workspace/(.+)$`)
	roleARNRe      = regexp.MustCompile(`^arn:aws[-a-z]*:iam::([0-9]{12}):role/.+$`)
)

// scraperStatuses are the values the status filter of ListScrapers takes.
var scraperStatuses = []string{meta.StatusCreating, meta.StatusUpdating, meta.StatusActive, meta.StatusDeleting,
	meta.StatusCreationFailed, meta.StatusUpdateFailed, "DELETION_FAILED"}

func scraperNotFound(id string) error {
	return awsapi.NotFound("Scraper", id, "scraper %s not found", id)
}

func (a *API) scraperARN(account, id string) string {
	return fmt.Sprintf("arn:aws:aps:%s:%s:scraper/%s", a.env.Region, account, id)
}

// findScraper returns the workspace holding scraper id and the scraper, when it
// belongs to the caller's account.
func (a *API) findScraper(r *http.Request, id string) (meta.Workspace, *meta.Scraper, error) {
	if !scraperIDRe.MatchString(id) {
		return meta.Workspace{}, nil, awsapi.Validation("scraperId", "scraperId %q is not a scraper id", id)
	}
	ws, ok := a.store.FindScraper(id)
	if !ok || ws.Scrapers[id].AccountID != a.callerAccount(r) {
		return meta.Workspace{}, nil, scraperNotFound(id)
	}
	return ws, ws.Scrapers[id], nil
}

// updateScraper applies fn to scraper id in the record of the workspace holding it.
func (a *API) updateScraper(r *http.Request, id string, fn func(ws *meta.Workspace, s *meta.Scraper) error) error {
	ws, _, err := a.findScraper(r, id)
	if err != nil {
		return err
	}
	_, err = a.store.UpdateWorkspace(r.Context(), ws.ID, func(cur *meta.Workspace) error {
		s, ok := cur.Scrapers[id]
		if !ok {
			return scraperNotFound(id)
		}
		return fn(cur, s)
	})
	if errors.Is(err, meta.ErrNotFound) {
		return scraperNotFound(id)
	}
	return err
}

// scraperSpec is what Create and Update set, validated.
type scraperSpec struct {
	alias       *string
	config      []byte
	destination *meta.Workspace // the destination workspace, when given
	cluster     string
	subnets     []string
	groups      []string
	sourceRole  string
	targetRole  string
	roleGiven   bool
}

func (a *API) checkScraperConfig(blob *scrapeConfiguration) ([]byte, error) {
	if blob == nil || blob.ConfigurationBlob == nil {
		return nil, awsapi.Validation("scrapeConfiguration.configurationBlob", "scrapeConfiguration.configurationBlob is required")
	}
	data, err := base64.StdEncoding.DecodeString(*blob.ConfigurationBlob)
	if err != nil {
		return nil, awsapi.Validation("scrapeConfiguration.configurationBlob", "configurationBlob is not base64: %v", err)
	}
	if _, err := scraper.CheckBlob(data); err != nil {
		return nil, awsapi.Validation("scrapeConfiguration.configurationBlob", "invalid scrape configuration: %v", err)
	}
	return data, nil
}

// checkDestination resolves a destination's workspace: in this region, existing,
// ACTIVE; another account's only with a roleConfiguration whose target role is that
// account's and whose source role is the caller's.
func (a *API) checkDestination(r *http.Request, d *scraperDestination, roles *roleConfiguration) (*meta.Workspace, error) {
	if d == nil || d.AMPConfiguration == nil || d.AMPConfiguration.WorkspaceARN == nil {
		return nil, awsapi.Validation("destination.ampConfiguration.workspaceArn", "destination.ampConfiguration.workspaceArn is required")
	}
	arn := *d.AMPConfiguration.WorkspaceARN
	m := workspaceARNRe.FindStringSubmatch(arn)
	if m == nil {
		return nil, awsapi.Validation("destination.ampConfiguration.workspaceArn", "%q is not a workspace ARN", arn)
	}
	if m[1] != a.env.Region {
		return nil, awsapi.Validation("destination.ampConfiguration.workspaceArn", "workspace %s is not in this server's region %s", arn, a.env.Region)
	}
	ws, err := a.store.GetWorkspace(r.Context(), m[3])
	if errors.Is(err, meta.ErrNotFound) || (err == nil && ws.ARN != arn) {
		return nil, awsapi.NotFound("Workspace", arn, "workspace %s not found", arn)
	}
	if err != nil {
		return nil, err
	}
	if ws.Status != meta.StatusActive {
		return nil, awsapi.Conflict("Workspace", ws.ID, "workspace %s is %s; a scraper needs an ACTIVE destination", ws.ID, ws.Status)
	}
	caller := a.callerAccount(r)
	if a.accountOf(&ws) != caller {
		if roles == nil || roles.TargetRoleARN == nil || roles.SourceRoleARN == nil {
			return nil, awsapi.Validation("roleConfiguration", "workspace %s is in account %s: a scraper of account %s writes there only with a roleConfiguration (sourceRoleArn in its account, targetRoleArn in the workspace's)", ws.ID, a.accountOf(&ws), caller)
		}
		if rm := roleARNRe.FindStringSubmatch(*roles.TargetRoleARN); rm == nil || rm[1] != a.accountOf(&ws) {
			return nil, awsapi.Validation("roleConfiguration.targetRoleArn", "targetRoleArn must be a role of the workspace's account %s", a.accountOf(&ws))
		}
		if rm := roleARNRe.FindStringSubmatch(*roles.SourceRoleARN); rm == nil || rm[1] != caller {
			return nil, awsapi.Validation("roleConfiguration.sourceRoleArn", "sourceRoleArn must be a role of the scraper's account %s", caller)
		}
		if a.CheckRoles != nil {
			if err := a.CheckRoles(r.Context(), *roles.SourceRoleARN, *roles.TargetRoleARN, ws.ARN); err != nil {
				return nil, awsapi.Validation("roleConfiguration", "%v", err)
			}
		}
	} else if a.Authorize != nil {
		// A scraper writes into its destination: its creator must be allowed to.
		if err := a.Authorize(r, "aps:RemoteWrite", ws.ARN); err != nil {
			return nil, err
		}
	}
	return &ws, nil
}

func checkSource(src *scraperSource) (cluster string, subnets, groups []string, err error) {
	if src == nil || (src.EKS == nil && src.VPC == nil) {
		return "", nil, nil, awsapi.Validation("source", "source.eksConfiguration is required")
	}
	if src.VPC != nil {
		return "", nil, nil, awsapi.Validation("source.vpcConfiguration", "vpcConfiguration (Amazon MSK) does not apply to a self-hosted server; use eksConfiguration, with a cluster mapped in --scraper.clusters-file for kubernetes_sd_configs")
	}
	e := src.EKS
	if e.ClusterARN == nil || !clusterARNRe.MatchString(*e.ClusterARN) {
		return "", nil, nil, awsapi.Validation("source.eksConfiguration.clusterArn", "clusterArn must be an EKS cluster ARN (arn:aws:eks:<region>:<account>:cluster/<name>)")
	}
	if len(e.SubnetIDs) < 1 || len(e.SubnetIDs) > 5 {
		return "", nil, nil, awsapi.Validation("source.eksConfiguration.subnetIds", "subnetIds must hold 1 to 5 subnets")
	}
	for _, s := range e.SubnetIDs {
		if !subnetRe.MatchString(s) {
			return "", nil, nil, awsapi.Validation("source.eksConfiguration.subnetIds", "%q is not a subnet id", s)
		}
	}
	if len(e.SecurityGroupIDs) > 5 {
		return "", nil, nil, awsapi.Validation("source.eksConfiguration.securityGroupIds", "securityGroupIds must hold at most 5 groups")
	}
	for _, g := range e.SecurityGroupIDs {
		if !securityGroup.MatchString(g) {
			return "", nil, nil, awsapi.Validation("source.eksConfiguration.securityGroupIds", "%q is not a security group id", g)
		}
	}
	return *e.ClusterARN, e.SubnetIDs, e.SecurityGroupIDs, nil
}

func checkScraperAlias(alias *string) error {
	if alias != nil && !scraperAliasRe.MatchString(*alias) {
		return awsapi.Validation("alias", "alias %q must be 1 to 100 letters, digits, '-', '.' or '_', starting with a letter or digit", *alias)
	}
	return nil
}

func (a *API) createScraper(w http.ResponseWriter, r *http.Request) error {
	var req createScraperRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return err
	}
	if err := checkScraperAlias(req.Alias); err != nil {
		return err
	}
	if err := validateTags(req.Tags); err != nil {
		return err
	}
	data, err := a.checkScraperConfig(req.ScrapeConfiguration)
	if err != nil {
		return err
	}
	cluster, subnets, groups, err := checkSource(req.Source)
	if err != nil {
		return err
	}
	dest, err := a.checkDestination(r, req.Destination, req.RoleConfiguration)
	if err != nil {
		return err
	}
	account := a.callerAccount(r)
	hash := hashRequest("CreateScraper", req)
	if req.ClientToken != nil {
		for _, ws := range a.store.ListWorkspaces() {
			for _, s := range ws.Scrapers {
				if s.AccountID == account && s.ClientToken == *req.ClientToken {
					if s.RequestHash != hash {
						return awsapi.Conflict("Scraper", s.ID, "clientToken %q was already used for scraper %s with other parameters", *req.ClientToken, s.ID)
					}
					awsapi.WriteJSON(w, http.StatusAccepted, scraperStatusResponse{ScraperID: s.ID, ARN: s.ARN, Status: scraperStatus{StatusCode: s.Status}, Tags: s.Tags})
					return nil
				}
			}
		}
	}
	if n := a.cfg.MaxScrapersPerAccount; n > 0 && a.countScrapers(account) >= n {
		return awsapi.QuotaExceeded("Scraper", "", "", "Limit exceeded. Account %s has %d scrapers, the most it may have (--controlplane.max-scrapers-per-account)", account, n)
	}
	id := "s-" + uuid.NewString()
	now := a.now().UTC()
	s := &meta.Scraper{
		ID:               id,
		AccountID:        account,
		ARN:              a.scraperARN(account, id),
		Config:           data,
		ClusterARN:       cluster,
		SubnetIDs:        subnets,
		SecurityGroupIDs: groups,
		RoleARN:          fmt.Sprintf("arn:aws:iam::%s:role/aws-service-role/scraper.aps.amazonaws.com/AWSServiceRoleForAmazonPrometheusScraper_%s", account, strings.ReplaceAll(id[2:17], "-", "")),
		Status:           meta.StatusCreating,
		CreatedAt:        now,
		ModifiedAt:       now,
		Tags:             req.Tags,
		RequestHash:      hash,
	}
	if req.Alias != nil {
		s.Alias = *req.Alias
	}
	if req.ClientToken != nil {
		s.ClientToken = *req.ClientToken
	}
	if rc := req.RoleConfiguration; rc != nil {
		s.SourceRoleARN, s.TargetRoleARN = deref(rc.SourceRoleARN), deref(rc.TargetRoleARN)
	}
	_, err = a.store.UpdateWorkspace(r.Context(), dest.ID, func(ws *meta.Workspace) error {
		if ws.Status != meta.StatusActive {
			return awsapi.Conflict("Workspace", ws.ID, "workspace %s is %s; a scraper needs an ACTIVE destination", ws.ID, ws.Status)
		}
		if ws.Scrapers == nil {
			ws.Scrapers = map[string]*meta.Scraper{}
		}
		ws.Scrapers[id] = s
		return nil
	})
	if errors.Is(err, meta.ErrNotFound) {
		return workspaceNotFound(dest.ID)
	}
	if err != nil {
		return err
	}
	a.logger.Info("scraper created", "scraper", id, "workspace", dest.ID, "account", account)
	awsapi.WriteJSON(w, http.StatusAccepted, scraperStatusResponse{ScraperID: id, ARN: s.ARN, Status: scraperStatus{StatusCode: s.Status}, Tags: s.Tags})
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (a *API) countScrapers(account string) int {
	seen := map[string]bool{}
	for _, ws := range a.store.ListWorkspaces() {
		for id, s := range ws.Scrapers {
			if s.AccountID == account {
				seen[id] = true
			}
		}
	}
	return len(seen)
}

// scraperDescription is a scraper as Describe and List answer it.
func (a *API) scraperDescription(ws *meta.Workspace, s *meta.Scraper) scraperDescription {
	d := scraperDescription{
		ScraperID:      s.ID,
		ARN:            s.ARN,
		RoleARN:        s.RoleARN,
		Status:         scraperStatus{StatusCode: s.Status},
		StatusReason:   s.StatusReason,
		CreatedAt:      awsapi.Timestamp(s.CreatedAt),
		LastModifiedAt: awsapi.Timestamp(s.ModifiedAt),
		Tags:           s.Tags,
		Source: &scraperSource{EKS: &eksConfiguration{
			ClusterARN:       &s.ClusterARN,
			SubnetIDs:        s.SubnetIDs,
			SecurityGroupIDs: s.SecurityGroupIDs,
		}},
		Destination: &scraperDestination{AMPConfiguration: &ampConfiguration{WorkspaceARN: &ws.ARN}},
	}
	if s.Alias != "" {
		d.Alias = &s.Alias
	}
	if s.SourceRoleARN != "" || s.TargetRoleARN != "" {
		d.RoleConfiguration = &roleConfiguration{SourceRoleARN: &s.SourceRoleARN, TargetRoleARN: &s.TargetRoleARN}
	}
	return d
}

func (a *API) describeScraper(w http.ResponseWriter, r *http.Request) error {
	ws, s, err := a.findScraper(r, r.PathValue("scraperId"))
	if err != nil {
		return err
	}
	d := a.scraperDescription(&ws, s)
	blob := base64.StdEncoding.EncodeToString(s.Config)
	d.ScrapeConfiguration = &scrapeConfiguration{ConfigurationBlob: &blob}
	awsapi.WriteJSON(w, http.StatusOK, describeScraperResponse{Scraper: d})
	return nil
}

// listScrapersFilters are the filter keys of ListScrapers.
var listScrapersFilters = []string{"status", "sourceArn", "destinationArn", "alias"}

func (a *API) listScrapers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 1000
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return awsapi.Validation("maxResults", "maxResults must be between 1 and 1000")
		}
		limit = n
	}
	filters := map[string][]string{}
	for k, vs := range q {
		switch {
		case k == "maxResults" || k == "nextToken":
		case slices.Contains(listScrapersFilters, k):
			filters[k] = vs
		default:
			return awsapi.Validation("filters", "unknown filter %q (filters: %s)", k, strings.Join(listScrapersFilters, ", "))
		}
	}
	if st, ok := filters["status"]; ok {
		for _, v := range st {
			if !slices.Contains(scraperStatuses, v) {
				return awsapi.Validation("filters", "unknown status %q", v)
			}
		}
	}
	after := q.Get("nextToken")
	if after != "" {
		b, err := base64.RawURLEncoding.DecodeString(after)
		if err != nil || !scraperIDRe.Match(b) {
			return awsapi.Validation("nextToken", "invalid nextToken")
		}
		after = string(b)
	}
	account := a.callerAccount(r)
	type entry struct {
		ws *meta.Workspace
		s  *meta.Scraper
	}
	byID := map[string]entry{}
	wss := a.store.ListWorkspaces()
	for i := range wss {
		for id, s := range wss[i].Scrapers {
			if s.AccountID != account {
				continue
			}
			if prev, ok := byID[id]; ok && !s.ModifiedAt.After(prev.s.ModifiedAt) {
				continue
			}
			byID[id] = entry{&wss[i], s}
		}
	}
	match := func(key, v string) bool {
		vs, ok := filters[key]
		return !ok || slices.Contains(vs, v)
	}
	var all []entry
	for _, e := range byID {
		if match("status", e.s.Status) && match("alias", e.s.Alias) && match("sourceArn", e.s.ClusterARN) && match("destinationArn", e.ws.ARN) {
			all = append(all, e)
		}
	}
	slices.SortFunc(all, func(x, y entry) int {
		if c := x.s.CreatedAt.Compare(y.s.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.s.ID, y.s.ID)
	})
	if after != "" {
		i := slices.IndexFunc(all, func(e entry) bool { return e.s.ID == after })
		if i < 0 {
			return awsapi.Validation("nextToken", "invalid nextToken")
		}
		all = all[i+1:]
	}
	resp := listScrapersResponse{Scrapers: []scraperDescription{}}
	for i, e := range all {
		if i == limit {
			resp.NextToken = base64.RawURLEncoding.EncodeToString([]byte(all[i-1].s.ID))
			break
		}
		resp.Scrapers = append(resp.Scrapers, a.scraperDescription(e.ws, e.s))
	}
	awsapi.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func (a *API) updateScraperOp(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("scraperId")
	var req updateScraperRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return err
	}
	if err := validateClientToken(req.ClientToken); err != nil {
		return err
	}
	if err := checkScraperAlias(req.Alias); err != nil {
		return err
	}
	var spec scraperSpec
	spec.alias = req.Alias
	if req.ScrapeConfiguration != nil {
		data, err := a.checkScraperConfig(req.ScrapeConfiguration)
		if err != nil {
			return err
		}
		spec.config = data
	}
	if req.Destination != nil {
		dest, err := a.checkDestination(r, req.Destination, req.RoleConfiguration)
		if err != nil {
			return err
		}
		spec.destination = dest
	}
	if rc := req.RoleConfiguration; rc != nil {
		spec.roleGiven, spec.sourceRole, spec.targetRole = true, deref(rc.SourceRoleARN), deref(rc.TargetRoleARN)
	}
	hash := hashRequest("UpdateScraper", req)
	ws, cur, err := a.findScraper(r, id)
	if err != nil {
		return err
	}
	if req.ClientToken != nil && cur.ClientToken == *req.ClientToken {
		if cur.RequestHash != hash {
			return awsapi.Conflict("Scraper", id, "clientToken %q was already used for scraper %s with other parameters", *req.ClientToken, id)
		}
		awsapi.WriteJSON(w, http.StatusAccepted, scraperStatusResponse{ScraperID: id, ARN: cur.ARN, Status: scraperStatus{StatusCode: cur.Status}, Tags: cur.Tags})
		return nil
	}
	apply := func(s *meta.Scraper) error {
		switch s.Status {
		case meta.StatusActive, meta.StatusCreationFailed, meta.StatusUpdateFailed:
		default:
			return awsapi.Conflict("Scraper", id, "scraper %s is %s; retry when it is ACTIVE", id, s.Status)
		}
		if spec.alias != nil {
			s.Alias = *spec.alias
		}
		if spec.config != nil {
			s.Config = spec.config
		}
		if spec.roleGiven {
			s.SourceRoleARN, s.TargetRoleARN = spec.sourceRole, spec.targetRole
		}
		s.Status, s.StatusReason = meta.StatusUpdating, ""
		s.ModifiedAt = a.now().UTC()
		s.ClientToken, s.RequestHash = deref(req.ClientToken), hash
		return nil
	}
	var out meta.Scraper
	if spec.destination == nil || spec.destination.ID == ws.ID {
		err = a.updateScraper(r, id, func(_ *meta.Workspace, s *meta.Scraper) error {
			if err := apply(s); err != nil {
				return err
			}
			out = *s
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		// Moving to another workspace: written to the new record first, then removed
		// from the old one; in between the newer copy wins everywhere.
		moved := *cur
		if err := apply(&moved); err != nil {
			return err
		}
		_, err := a.store.UpdateWorkspace(r.Context(), spec.destination.ID, func(dst *meta.Workspace) error {
			if dst.Scrapers == nil {
				dst.Scrapers = map[string]*meta.Scraper{}
			}
			dst.Scrapers[id] = &moved
			return nil
		})
		if err != nil {
			return err
		}
		_, err = a.store.UpdateWorkspace(r.Context(), ws.ID, func(old *meta.Workspace) error {
			delete(old.Scrapers, id)
			return nil
		})
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		out = moved
	}
	a.logger.Info("scraper updated", "scraper", id)
	awsapi.WriteJSON(w, http.StatusAccepted, scraperStatusResponse{ScraperID: id, ARN: out.ARN, Status: scraperStatus{StatusCode: out.Status}, Tags: out.Tags})
	return nil
}

func (a *API) deleteScraper(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("scraperId")
	token, err := queryClientToken(r)
	if err != nil {
		return err
	}
	err = a.updateScraper(r, id, func(_ *meta.Workspace, s *meta.Scraper) error {
		if s.Status == meta.StatusDeleting {
			if token != nil && *token == s.DeleteClientToken {
				return errUnchanged
			}
			return awsapi.Conflict("Scraper", id, "scraper %s is already being deleted", id)
		}
		if s.Status == meta.StatusCreating || s.Status == meta.StatusUpdating {
			return awsapi.Conflict("Scraper", id, "scraper %s is %s; retry when it is ACTIVE", id, s.Status)
		}
		s.Status, s.StatusReason = meta.StatusDeleting, ""
		s.DeleteClientToken = deref(token)
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	if err == nil {
		a.logger.Info("scraper deletion requested", "scraper", id)
	}
	awsapi.WriteJSON(w, http.StatusAccepted, deleteScraperResponse{ScraperID: id, Status: scraperStatus{StatusCode: meta.StatusDeleting}})
	return nil
}

func (a *API) getDefaultScraperConfiguration(w http.ResponseWriter, _ *http.Request) error {
	awsapi.WriteJSON(w, http.StatusOK, defaultScraperConfigurationResponse{Configuration: []byte(scraper.DefaultConfiguration)})
	return nil
}

// scraperComponentTypes are the components a scraper's logging configuration names.
var scraperComponentTypes = []string{scraper.ComponentServiceDiscovery, scraper.ComponentCollector, scraper.ComponentExporter}

func (a *API) updateScraperLoggingConfiguration(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("scraperId")
	var req updateScraperLoggingRequest
	if err := awsapi.ReadJSON(r, a.cfg.MaxRequestBodyBytes, &req); err != nil {
		return err
	}
	if req.LoggingDestination == nil || req.LoggingDestination.CloudWatchLogs == nil || req.LoggingDestination.CloudWatchLogs.LogGroupARN == nil {
		return awsapi.Validation("loggingDestination.cloudWatchLogs.logGroupArn", "loggingDestination.cloudWatchLogs.logGroupArn is required")
	}
	group := *req.LoggingDestination.CloudWatchLogs.LogGroupARN
	if err := a.logGroupExists(r, "loggingDestination.cloudWatchLogs.logGroupArn", group); err != nil {
		return err
	}
	components := []meta.ScraperComponent{}
	for _, c := range req.ScraperComponents {
		if c.Type == nil || !slices.Contains(scraperComponentTypes, *c.Type) {
			return awsapi.Validation("scraperComponents", "component type must be one of %s", strings.Join(scraperComponentTypes, ", "))
		}
		mc := meta.ScraperComponent{Type: *c.Type}
		if c.Config != nil {
			mc.Options = c.Config.Options
		}
		components = append(components, mc)
	}
	if len(components) == 0 {
		// AMP logs every component when none is named.
		for _, t := range scraperComponentTypes {
			components = append(components, meta.ScraperComponent{Type: t})
		}
	}
	var status string
	err := a.updateScraper(r, id, func(ws *meta.Workspace, s *meta.Scraper) error {
		if err := a.checkLogGroup("loggingDestination.cloudWatchLogs.logGroupArn", group, &meta.Workspace{AccountID: s.AccountID}); err != nil {
			return err
		}
		l := s.Logging
		switch {
		case l == nil:
			l = &meta.ScraperLogging{Status: meta.StatusCreating}
			s.Logging = l
		case l.Status == meta.StatusActive || l.Status == meta.StatusCreationFailed || l.Status == meta.StatusUpdateFailed:
			l.Status = meta.StatusUpdating
		default:
			return awsapi.Conflict("ScraperLoggingConfiguration", id, "the logging configuration of scraper %s is %s; retry when it is ACTIVE", id, l.Status)
		}
		l.LogGroupARN, l.Components, l.StatusReason = group, components, ""
		l.ModifiedAt = a.now().UTC()
		status = l.Status
		return nil
	})
	if err != nil {
		return err
	}
	awsapi.WriteJSON(w, http.StatusAccepted, scraperLoggingStatusResponse{Status: loggingConfigurationStatus{StatusCode: status}})
	return nil
}

func (a *API) describeScraperLoggingConfiguration(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("scraperId")
	_, s, err := a.findScraper(r, id)
	if err != nil {
		return err
	}
	l := s.Logging
	if l == nil {
		return awsapi.NotFound("ScraperLoggingConfiguration", id, "scraper %s has no logging configuration", id)
	}
	resp := describeScraperLoggingResponse{
		Status:             loggingConfigurationStatus{StatusCode: l.Status, StatusReason: l.StatusReason},
		ScraperID:          id,
		LoggingDestination: scraperLoggingDestination{CloudWatchLogs: &cloudWatchLogDestination{LogGroupARN: &l.LogGroupARN}},
		ModifiedAt:         awsapi.Timestamp(l.ModifiedAt),
	}
	for _, c := range l.Components {
		t := c.Type
		sc := scraperComponentJSON{Type: &t}
		if len(c.Options) > 0 {
			sc.Config = &componentConfig{Options: c.Options}
		}
		resp.ScraperComponents = append(resp.ScraperComponents, sc)
	}
	awsapi.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func (a *API) deleteScraperLoggingConfiguration(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("scraperId")
	if _, err := queryClientToken(r); err != nil {
		return err
	}
	err := a.updateScraper(r, id, func(_ *meta.Workspace, s *meta.Scraper) error {
		l := s.Logging
		if l == nil {
			return awsapi.NotFound("ScraperLoggingConfiguration", id, "scraper %s has no logging configuration", id)
		}
		if l.Status == meta.StatusDeleting {
			return errUnchanged
		}
		l.Status, l.StatusReason = meta.StatusDeleting, ""
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// scraperOfARN resolves a scraper ARN for tagging.
func (a *API) scraperOfARN(arn, id string) (taggable, error) {
	ws, ok := a.store.FindScraper(id)
	if !ok || ws.Scrapers[id].ARN != arn {
		return taggable{}, awsapi.NotFound("Resource", arn, "resource %s not found", arn)
	}
	return taggable{arn: arn, workspace: ws.ID, scraper: id}, nil
}
