package meta

import (
	"maps"
	"slices"
	"time"
)

// Workspace statuses, as AMP names them.
const (
	StatusCreating       = "CREATING"
	StatusActive         = "ACTIVE"
	StatusUpdating       = "UPDATING"
	StatusDeleting       = "DELETING"
	StatusCreationFailed = "CREATION_FAILED"
	StatusUpdateFailed   = "UPDATE_FAILED"
)

// Workspace is the stored form of an AMP workspace. It is Strata's own format, not the
// API shape: the control plane maps between the two.
type Workspace struct {
	ID string `json:"id"`
	// AccountID owns the workspace; empty in records written before accounts, meaning
	// the server's default account.
	AccountID string            `json:"accountId,omitempty"`
	Alias     string            `json:"alias,omitempty"`
	ARN       string            `json:"arn"`
	Status    string            `json:"status"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
	Tags      map[string]string `json:"tags,omitempty"`
	KMSKeyARN string            `json:"kmsKeyArn,omitempty"`
	// ClientToken and RequestHash make CreateWorkspace idempotent: the same token with the
	// same parameters returns this workspace, with other parameters it is a conflict.
	ClientToken string `json:"clientToken,omitempty"`
	RequestHash string `json:"requestHash,omitempty"`
	// StatusReason says why a workspace is in CREATION_FAILED.
	StatusReason  string        `json:"statusReason,omitempty"`
	Configuration Configuration `json:"configuration"`
	// ResourcePolicy is the workspace's resource-based policy; nil when none.
	ResourcePolicy *ResourcePolicy `json:"resourcePolicy,omitempty"`
	// RuleGroupsNamespaces are the workspace's rule files, by namespace name. They live
	// in the workspace's object (AMP caps one at 1 MB and a workspace at a few dozen), so
	// one conditional write changes them and every process sees them with the workspace.
	RuleGroupsNamespaces map[string]*RuleGroupsNamespace `json:"ruleGroupsNamespaces,omitempty"`
	// AlertManagerDefinition is the workspace's Alertmanager configuration; nil when none.
	AlertManagerDefinition *AlertManagerDefinition `json:"alertManagerDefinition,omitempty"`
	// Logging is where the workspace's rule, alerting and ingestion events are logged
	// (CreateLoggingConfiguration); QueryLogging where its costly queries are
	// (CreateQueryLoggingConfiguration). Nil when none.
	Logging      *LoggingConfiguration `json:"logging,omitempty"`
	QueryLogging *LoggingConfiguration `json:"queryLogging,omitempty"`
	// Scrapers are the managed collectors whose destination is this workspace, by id.
	// They live in their destination's record, so the scrapers of a workspace change
	// with one conditional write and go with it when it is deleted.
	Scrapers map[string]*Scraper `json:"scrapers,omitempty"`
}

// Scraper is a managed collector (CreateScraper): a Prometheus scrape configuration run
// by the server, writing into its destination workspace.
type Scraper struct {
	ID string `json:"id"`
	// AccountID owns the scraper (its creator's account); ARN is
	// arn:aws:aps:<region>:<account>:scraper/<id>.
	AccountID string `json:"accountId"`
	ARN       string `json:"arn"`
	Alias     string `json:"alias,omitempty"`
	// Config is the Prometheus scrape configuration, as uploaded (YAML).
	Config []byte `json:"config"`
	// ClusterARN is source.eksConfiguration.clusterArn, with its subnets and security
	// groups as given; the cluster's kubeconfig comes from the server's clusters file.
	ClusterARN       string   `json:"clusterArn,omitempty"`
	SubnetIDs        []string `json:"subnetIds,omitempty"`
	SecurityGroupIDs []string `json:"securityGroupIds,omitempty"`
	// RoleARN is the role AMP would scrape as (reported by Describe); SourceRoleARN and
	// TargetRoleARN the roleConfiguration of a cross-account destination.
	RoleARN       string `json:"roleArn"`
	SourceRoleARN string `json:"sourceRoleArn,omitempty"`
	TargetRoleARN string `json:"targetRoleArn,omitempty"`
	// Status is CREATING, ACTIVE, UPDATING, DELETING, CREATION_FAILED, UPDATE_FAILED or
	// DELETION_FAILED.
	Status       string            `json:"status"`
	StatusReason string            `json:"statusReason,omitempty"`
	CreatedAt    time.Time         `json:"createdAt"`
	ModifiedAt   time.Time         `json:"modifiedAt"`
	Tags         map[string]string `json:"tags,omitempty"`
	// Logging is the scraper's logging configuration; nil when none.
	Logging *ScraperLogging `json:"logging,omitempty"`
	// ClientToken and RequestHash make Create and Update idempotent; DeleteClientToken
	// Delete.
	ClientToken       string `json:"clientToken,omitempty"`
	RequestHash       string `json:"requestHash,omitempty"`
	DeleteClientToken string `json:"deleteClientToken,omitempty"`
}

// ScraperLogging is a scraper's logging configuration
// (UpdateScraperLoggingConfiguration): where its components log, and which.
type ScraperLogging struct {
	LogGroupARN string `json:"logGroupArn"`
	// Components are SERVICE_DISCOVERY, COLLECTOR and EXPORTER, with their options.
	Components []ScraperComponent `json:"components"`
	Status     string             `json:"status"`
	// StatusReason says why it failed.
	StatusReason string    `json:"statusReason,omitempty"`
	ModifiedAt   time.Time `json:"modifiedAt"`
}

// Logs reports whether the scraper's records go to the log group.
func (l *ScraperLogging) Logs() bool { return l != nil && logsIn(l.Status) }

// ScraperComponent is one component a scraper logs for.
type ScraperComponent struct {
	Type    string            `json:"type"`
	Options map[string]string `json:"options,omitempty"`
}

// LoggingConfiguration is a workspace's logging or query logging configuration: the
// log group its records go to, and for query logging the threshold of samples
// processed from which a query is logged.
type LoggingConfiguration struct {
	LogGroupARN string `json:"logGroupArn"`
	// QSPThreshold is the query logging filter: queries processing at least this many
	// samples are logged. Unused for the workspace logging configuration.
	QSPThreshold int64 `json:"qspThreshold,omitempty"`
	// Status is CREATING, ACTIVE, UPDATING, DELETING, CREATION_FAILED or UPDATE_FAILED.
	Status       string    `json:"status"`
	StatusReason string    `json:"statusReason,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	ModifiedAt   time.Time `json:"modifiedAt"`
	// ClientToken, RequestHash and DeleteClientToken make Create, Update and Delete
	// idempotent, as for RuleGroupsNamespace.
	ClientToken       string `json:"clientToken,omitempty"`
	RequestHash       string `json:"requestHash,omitempty"`
	DeleteClientToken string `json:"deleteClientToken,omitempty"`
}

// Logs reports whether records go to the configuration's log group: from the moment it
// is created until it is deleted, as long as it has not failed.
func (c *LoggingConfiguration) Logs() bool { return c != nil && logsIn(c.Status) }

// logsIn reports whether a logging configuration in status takes records: from its
// creation until its deletion, unless it failed.
func logsIn(status string) bool {
	return status == StatusCreating || status == StatusActive || status == StatusUpdating
}

// RuleGroupsNamespace is one rule file of a workspace (CreateRuleGroupsNamespace).
type RuleGroupsNamespace struct {
	Name string `json:"name"`
	ARN  string `json:"arn"`
	// Data is the Prometheus rule file, as uploaded (YAML).
	Data []byte `json:"data"`
	// Status is CREATING, ACTIVE, UPDATING, DELETING, CREATION_FAILED or UPDATE_FAILED;
	// StatusReason says why it failed.
	Status       string            `json:"status"`
	StatusReason string            `json:"statusReason,omitempty"`
	CreatedAt    time.Time         `json:"createdAt"`
	ModifiedAt   time.Time         `json:"modifiedAt"`
	Tags         map[string]string `json:"tags,omitempty"`
	// RuleGroups and Rules count the groups and rules of Data, for the per-workspace
	// quotas (counted when Data is written, so checking a quota reads no other file).
	RuleGroups int `json:"ruleGroups,omitempty"`
	Rules      int `json:"rules,omitempty"`
	// ClientToken and RequestHash make the last Create or Put idempotent: a retry with
	// the same token and parameters changes nothing, with other parameters it is a
	// conflict. DeleteClientToken does the same for a Delete in progress.
	ClientToken       string `json:"clientToken,omitempty"`
	RequestHash       string `json:"requestHash,omitempty"`
	DeleteClientToken string `json:"deleteClientToken,omitempty"`
}

// AlertManagerDefinition is a workspace's Alertmanager configuration
// (CreateAlertManagerDefinition).
type AlertManagerDefinition struct {
	// Data is AMP's definition format, as uploaded: YAML with alertmanager_config (the
	// Alertmanager configuration, as text) and optional template_files (name → text).
	Data []byte `json:"data"`
	// Status is CREATING, ACTIVE, UPDATING, DELETING, CREATION_FAILED or UPDATE_FAILED.
	Status       string    `json:"status"`
	StatusReason string    `json:"statusReason,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	ModifiedAt   time.Time `json:"modifiedAt"`
	// ClientToken, RequestHash and DeleteClientToken make Create, Put and Delete
	// idempotent, as for RuleGroupsNamespace.
	ClientToken       string `json:"clientToken,omitempty"`
	RequestHash       string `json:"requestHash,omitempty"`
	DeleteClientToken string `json:"deleteClientToken,omitempty"`
}

// ResourcePolicy is a workspace's resource-based policy (PutResourcePolicy).
type ResourcePolicy struct {
	Document   string    `json:"document"`
	RevisionID string    `json:"revisionId"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// Configuration is a workspace's configuration (DescribeWorkspaceConfiguration).
type Configuration struct {
	// RetentionPeriodInDays zero means the server default.
	RetentionPeriodInDays int                 `json:"retentionPeriodInDays,omitempty"`
	LimitsPerLabelSet     []LimitsPerLabelSet `json:"limitsPerLabelSet,omitempty"`
	Status                string              `json:"status,omitempty"`
	StatusReason          string              `json:"statusReason,omitempty"`
}

// LimitsPerLabelSet caps the active series that match a label set.
type LimitsPerLabelSet struct {
	LabelSet map[string]string `json:"labelSet"`
	// MaxSeries zero means no limit is enforced (usage is still reported), as in AMP.
	MaxSeries int64 `json:"maxSeries"`
}

// Clone returns a deep copy, so callers may keep or change it without locks.
//
// The rule files and the definition (Data) are shared, not copied: they are immutable
// (a change replaces the slice), and copying up to megabytes on every lookup would
// tax the data path.
func (w Workspace) Clone() Workspace {
	w.Tags = maps.Clone(w.Tags)
	w.Configuration.LimitsPerLabelSet = slices.Clone(w.Configuration.LimitsPerLabelSet)
	for i, l := range w.Configuration.LimitsPerLabelSet {
		w.Configuration.LimitsPerLabelSet[i].LabelSet = maps.Clone(l.LabelSet)
	}
	if w.ResourcePolicy != nil {
		rp := *w.ResourcePolicy
		w.ResourcePolicy = &rp
	}
	if w.RuleGroupsNamespaces != nil {
		m := make(map[string]*RuleGroupsNamespace, len(w.RuleGroupsNamespaces))
		for k, ns := range w.RuleGroupsNamespaces {
			c := *ns
			c.Tags = maps.Clone(ns.Tags)
			m[k] = &c
		}
		w.RuleGroupsNamespaces = m
	}
	if w.AlertManagerDefinition != nil {
		d := *w.AlertManagerDefinition
		w.AlertManagerDefinition = &d
	}
	if w.Logging != nil {
		c := *w.Logging
		w.Logging = &c
	}
	if w.QueryLogging != nil {
		c := *w.QueryLogging
		w.QueryLogging = &c
	}
	if w.Scrapers != nil {
		m := make(map[string]*Scraper, len(w.Scrapers))
		for k, s := range w.Scrapers {
			c := *s
			c.Tags = maps.Clone(s.Tags)
			c.SubnetIDs = slices.Clone(s.SubnetIDs)
			c.SecurityGroupIDs = slices.Clone(s.SecurityGroupIDs)
			if s.Logging != nil {
				l := *s.Logging
				l.Components = slices.Clone(l.Components)
				c.Logging = &l
			}
			m[k] = &c
		}
		w.Scrapers = m
	}
	return w
}
