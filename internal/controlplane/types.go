package controlplane

import "github.com/stratametrics/strata/internal/awsapi"

// Wire shapes of the AMP REST-JSON API. Pointers mark members that may be absent, so an
// omitted member and an empty one can be told apart where the model cares.

type workspaceStatus struct {
	StatusCode string `json:"statusCode"`
}

type createWorkspaceRequest struct {
	Alias       *string           `json:"alias"`
	ClientToken *string           `json:"clientToken"`
	Tags        map[string]string `json:"tags"`
	KMSKeyARN   *string           `json:"kmsKeyArn"`
}

type createWorkspaceResponse struct {
	WorkspaceID string            `json:"workspaceId"`
	ARN         string            `json:"arn"`
	Status      workspaceStatus   `json:"status"`
	Tags        map[string]string `json:"tags,omitempty"`
	KMSKeyARN   string            `json:"kmsKeyArn,omitempty"`
}

type workspaceDescription struct {
	WorkspaceID        string            `json:"workspaceId"`
	Alias              string            `json:"alias,omitempty"`
	ARN                string            `json:"arn"`
	Status             workspaceStatus   `json:"status"`
	PrometheusEndpoint string            `json:"prometheusEndpoint,omitempty"`
	CreatedAt          awsapi.Timestamp  `json:"createdAt"`
	Tags               map[string]string `json:"tags,omitempty"`
	KMSKeyARN          string            `json:"kmsKeyArn,omitempty"`
}

type describeWorkspaceResponse struct {
	Workspace workspaceDescription `json:"workspace"`
}

type workspaceSummary struct {
	WorkspaceID string            `json:"workspaceId"`
	Alias       string            `json:"alias,omitempty"`
	ARN         string            `json:"arn"`
	Status      workspaceStatus   `json:"status"`
	CreatedAt   awsapi.Timestamp  `json:"createdAt"`
	Tags        map[string]string `json:"tags,omitempty"`
	KMSKeyARN   string            `json:"kmsKeyArn,omitempty"`
}

type listWorkspacesResponse struct {
	Workspaces []workspaceSummary `json:"workspaces"`
	NextToken  string             `json:"nextToken,omitempty"`
}

type updateWorkspaceAliasRequest struct {
	Alias       *string `json:"alias"`
	ClientToken *string `json:"clientToken"`
}

type tagResourceRequest struct {
	Tags map[string]string `json:"tags"`
}

type listTagsForResourceResponse struct {
	Tags map[string]string `json:"tags"`
}

type limitsPerLabelSetEntry struct {
	MaxSeries *int64 `json:"maxSeries,omitempty"`
}

type limitsPerLabelSet struct {
	Limits   *limitsPerLabelSetEntry `json:"limits"`
	LabelSet map[string]string       `json:"labelSet"`
}

type workspaceConfigurationStatus struct {
	StatusCode   string `json:"statusCode"`
	StatusReason string `json:"statusReason,omitempty"`
}

type workspaceConfigurationDescription struct {
	Status                workspaceConfigurationStatus `json:"status"`
	LimitsPerLabelSet     []limitsPerLabelSet          `json:"limitsPerLabelSet,omitempty"`
	RetentionPeriodInDays int                          `json:"retentionPeriodInDays,omitempty"`
}

type describeWorkspaceConfigurationResponse struct {
	WorkspaceConfiguration workspaceConfigurationDescription `json:"workspaceConfiguration"`
}

type updateWorkspaceConfigurationRequest struct {
	ClientToken           *string             `json:"clientToken"`
	LimitsPerLabelSet     []limitsPerLabelSet `json:"limitsPerLabelSet"`
	RetentionPeriodInDays *int                `json:"retentionPeriodInDays"`
}

type updateWorkspaceConfigurationResponse struct {
	Status workspaceConfigurationStatus `json:"status"`
}

// Rule groups namespaces. data is a blob: base64 in JSON. It is decoded by the handler,
// not by encoding/json, so that a bad encoding is a ValidationException naming "data".

type ruleGroupsNamespaceStatus struct {
	StatusCode   string `json:"statusCode"`
	StatusReason string `json:"statusReason,omitempty"`
}

type createRuleGroupsNamespaceRequest struct {
	Name        *string           `json:"name"`
	Data        *string           `json:"data"`
	ClientToken *string           `json:"clientToken"`
	Tags        map[string]string `json:"tags"`
}

type putRuleGroupsNamespaceRequest struct {
	Data        *string `json:"data"`
	ClientToken *string `json:"clientToken"`
}

// ruleGroupsNamespaceResponse answers CreateRuleGroupsNamespace and PutRuleGroupsNamespace.
type ruleGroupsNamespaceResponse struct {
	Name   string                    `json:"name"`
	ARN    string                    `json:"arn"`
	Status ruleGroupsNamespaceStatus `json:"status"`
	Tags   map[string]string         `json:"tags,omitempty"`
}

type ruleGroupsNamespaceDescription struct {
	ARN        string                    `json:"arn"`
	Name       string                    `json:"name"`
	Status     ruleGroupsNamespaceStatus `json:"status"`
	Data       []byte                    `json:"data"`
	CreatedAt  awsapi.Timestamp          `json:"createdAt"`
	ModifiedAt awsapi.Timestamp          `json:"modifiedAt"`
	Tags       map[string]string         `json:"tags,omitempty"`
}

type describeRuleGroupsNamespaceResponse struct {
	RuleGroupsNamespace ruleGroupsNamespaceDescription `json:"ruleGroupsNamespace"`
}

type ruleGroupsNamespaceSummary struct {
	ARN        string                    `json:"arn"`
	Name       string                    `json:"name"`
	Status     ruleGroupsNamespaceStatus `json:"status"`
	CreatedAt  awsapi.Timestamp          `json:"createdAt"`
	ModifiedAt awsapi.Timestamp          `json:"modifiedAt"`
	Tags       map[string]string         `json:"tags,omitempty"`
}

type listRuleGroupsNamespacesResponse struct {
	RuleGroupsNamespaces []ruleGroupsNamespaceSummary `json:"ruleGroupsNamespaces"`
	NextToken            string                       `json:"nextToken,omitempty"`
}

// Alert manager definition.

type alertManagerDefinitionStatus struct {
	StatusCode   string `json:"statusCode"`
	StatusReason string `json:"statusReason,omitempty"`
}

type alertManagerDefinitionRequest struct {
	Data        *string `json:"data"`
	ClientToken *string `json:"clientToken"`
}

// alertManagerDefinitionResponse answers CreateAlertManagerDefinition and
// PutAlertManagerDefinition.
type alertManagerDefinitionResponse struct {
	Status alertManagerDefinitionStatus `json:"status"`
}

type alertManagerDefinitionDescription struct {
	Status     alertManagerDefinitionStatus `json:"status"`
	Data       []byte                       `json:"data"`
	CreatedAt  awsapi.Timestamp             `json:"createdAt"`
	ModifiedAt awsapi.Timestamp             `json:"modifiedAt"`
}

type describeAlertManagerDefinitionResponse struct {
	AlertManagerDefinition alertManagerDefinitionDescription `json:"alertManagerDefinition"`
}

// Logging and query logging configurations.

type loggingConfigurationStatus struct {
	StatusCode   string `json:"statusCode"`
	StatusReason string `json:"statusReason,omitempty"`
}

type loggingConfigurationRequest struct {
	LogGroupARN *string `json:"logGroupArn"`
	ClientToken *string `json:"clientToken"`
}

// loggingStatusResponse answers the Creates and Updates of both configurations.
type loggingStatusResponse struct {
	Status loggingConfigurationStatus `json:"status"`
}

type loggingConfigurationMetadata struct {
	Status      loggingConfigurationStatus `json:"status"`
	Workspace   string                     `json:"workspace"`
	LogGroupARN string                     `json:"logGroupArn"`
	CreatedAt   awsapi.Timestamp           `json:"createdAt"`
	ModifiedAt  awsapi.Timestamp           `json:"modifiedAt"`
}

type describeLoggingConfigurationResponse struct {
	LoggingConfiguration loggingConfigurationMetadata `json:"loggingConfiguration"`
}

type cloudWatchLogDestination struct {
	LogGroupARN *string `json:"logGroupArn"`
}

type loggingFilter struct {
	QSPThreshold *int64 `json:"qspThreshold"`
}

type loggingDestination struct {
	CloudWatchLogs *cloudWatchLogDestination `json:"cloudWatchLogs"`
	Filters        *loggingFilter            `json:"filters"`
}

type queryLoggingConfigurationRequest struct {
	Destinations []loggingDestination `json:"destinations"`
	ClientToken  *string              `json:"clientToken"`
}

type queryLoggingConfigurationMetadata struct {
	Status       loggingConfigurationStatus `json:"status"`
	Workspace    string                     `json:"workspace"`
	Destinations []loggingDestination       `json:"destinations"`
	CreatedAt    awsapi.Timestamp           `json:"createdAt"`
	ModifiedAt   awsapi.Timestamp           `json:"modifiedAt"`
}

type describeQueryLoggingConfigurationResponse struct {
	QueryLoggingConfiguration queryLoggingConfigurationMetadata `json:"queryLoggingConfiguration"`
}

// Scrapers.

type scrapeConfiguration struct {
	ConfigurationBlob *string `json:"configurationBlob,omitempty"`
}

type eksConfiguration struct {
	ClusterARN       *string  `json:"clusterArn"`
	SubnetIDs        []string `json:"subnetIds"`
	SecurityGroupIDs []string `json:"securityGroupIds,omitempty"`
}

type vpcConfiguration struct {
	SubnetIDs        []string `json:"subnetIds"`
	SecurityGroupIDs []string `json:"securityGroupIds"`
}

type scraperSource struct {
	EKS *eksConfiguration `json:"eksConfiguration,omitempty"`
	VPC *vpcConfiguration `json:"vpcConfiguration,omitempty"`
}

type ampConfiguration struct {
	WorkspaceARN *string `json:"workspaceArn"`
}

type scraperDestination struct {
	AMPConfiguration *ampConfiguration `json:"ampConfiguration,omitempty"`
}

type roleConfiguration struct {
	SourceRoleARN *string `json:"sourceRoleArn,omitempty"`
	TargetRoleARN *string `json:"targetRoleArn,omitempty"`
}

type createScraperRequest struct {
	Alias               *string              `json:"alias"`
	ScrapeConfiguration *scrapeConfiguration `json:"scrapeConfiguration"`
	Source              *scraperSource       `json:"source"`
	Destination         *scraperDestination  `json:"destination"`
	RoleConfiguration   *roleConfiguration   `json:"roleConfiguration"`
	ClientToken         *string              `json:"clientToken"`
	Tags                map[string]string    `json:"tags"`
}

type updateScraperRequest struct {
	Alias               *string              `json:"alias"`
	ScrapeConfiguration *scrapeConfiguration `json:"scrapeConfiguration"`
	Destination         *scraperDestination  `json:"destination"`
	RoleConfiguration   *roleConfiguration   `json:"roleConfiguration"`
	ClientToken         *string              `json:"clientToken"`
}

type scraperStatus struct {
	StatusCode string `json:"statusCode"`
}

// scraperStatusResponse answers CreateScraper and UpdateScraper.
type scraperStatusResponse struct {
	ScraperID string            `json:"scraperId"`
	ARN       string            `json:"arn"`
	Status    scraperStatus     `json:"status"`
	Tags      map[string]string `json:"tags,omitempty"`
}

type deleteScraperResponse struct {
	ScraperID string        `json:"scraperId"`
	Status    scraperStatus `json:"status"`
}

type scraperDescription struct {
	Alias               *string              `json:"alias,omitempty"`
	ScraperID           string               `json:"scraperId"`
	ARN                 string               `json:"arn"`
	RoleARN             string               `json:"roleArn"`
	Status              scraperStatus        `json:"status"`
	StatusReason        string               `json:"statusReason,omitempty"`
	CreatedAt           awsapi.Timestamp     `json:"createdAt"`
	LastModifiedAt      awsapi.Timestamp     `json:"lastModifiedAt"`
	Tags                map[string]string    `json:"tags,omitempty"`
	ScrapeConfiguration *scrapeConfiguration `json:"scrapeConfiguration,omitempty"`
	Source              *scraperSource       `json:"source"`
	Destination         *scraperDestination  `json:"destination"`
	RoleConfiguration   *roleConfiguration   `json:"roleConfiguration,omitempty"`
}

type describeScraperResponse struct {
	Scraper scraperDescription `json:"scraper"`
}

type listScrapersResponse struct {
	Scrapers  []scraperDescription `json:"scrapers"`
	NextToken string               `json:"nextToken,omitempty"`
}

type defaultScraperConfigurationResponse struct {
	Configuration []byte `json:"configuration"`
}

type componentConfig struct {
	Options map[string]string `json:"options,omitempty"`
}

type scraperComponentJSON struct {
	Type   *string          `json:"type"`
	Config *componentConfig `json:"config,omitempty"`
}

type scraperLoggingDestination struct {
	CloudWatchLogs *cloudWatchLogDestination `json:"cloudWatchLogs,omitempty"`
}

type updateScraperLoggingRequest struct {
	LoggingDestination *scraperLoggingDestination `json:"loggingDestination"`
	ScraperComponents  []scraperComponentJSON     `json:"scraperComponents"`
}

type scraperLoggingStatusResponse struct {
	Status loggingConfigurationStatus `json:"status"`
}

type describeScraperLoggingResponse struct {
	Status             loggingConfigurationStatus `json:"status"`
	ScraperID          string                     `json:"scraperId"`
	LoggingDestination scraperLoggingDestination  `json:"loggingDestination"`
	ScraperComponents  []scraperComponentJSON     `json:"scraperComponents"`
	ModifiedAt         awsapi.Timestamp           `json:"modifiedAt"`
}
