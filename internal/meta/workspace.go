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
	return w
}
