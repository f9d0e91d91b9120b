package controlplane

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/stratametrics/strata/internal/awsapi"
	"github.com/stratametrics/strata/internal/blocks"
)

// Constraints from the AMP model (botocore data/amp/2020-08-01/service-2.json).
var (
	clientTokenRe = regexp.MustCompile(`^[!-~]+$`)
	tagRe         = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	kmsKeyARNRe   = regexp.MustCompile(`^arn:aws[-a-z]*:kms:[-a-z0-9]+:[0-9]{12}:key/[-a-f0-9]+$`)
	labelNameRe   = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

const (
	maxTags              = 50
	maxRetentionDays     = 1095
	maxLimitsPerLabelSet = 100
)

func validateAlias(field string, alias *string) error {
	if alias == nil {
		return nil
	}
	if n := utf8.RuneCountInString(*alias); n < 1 || n > 100 {
		return awsapi.Validation(field, "%s must be 1 to 100 characters long, got %d", field, n)
	}
	return nil
}

func validateClientToken(token *string) error {
	if token == nil {
		return nil
	}
	if n := len(*token); n < 1 || n > 64 {
		return awsapi.Validation("clientToken", "clientToken must be 1 to 64 characters long, got %d", n)
	}
	if !clientTokenRe.MatchString(*token) {
		return awsapi.Validation("clientToken", "clientToken may hold only printable ASCII characters without spaces")
	}
	return nil
}

func validateTagKey(field, k string) error {
	if n := utf8.RuneCountInString(k); n < 1 || n > 128 {
		return awsapi.Validation(field, "tag key %q must be 1 to 128 characters long", k)
	}
	if !tagRe.MatchString(k) {
		return awsapi.Validation(field, "tag key %q may hold only letters, digits, spaces and _ . : / = + - @", k)
	}
	if strings.HasPrefix(strings.ToLower(k), "aws:") {
		return awsapi.Validation(field, "tag key %q uses the reserved prefix aws:", k)
	}
	return nil
}

func validateTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return awsapi.Validation("tags", "a resource may have at most %d tags, got %d", maxTags, len(tags))
	}
	for k, v := range tags {
		if err := validateTagKey("tags", k); err != nil {
			return err
		}
		if utf8.RuneCountInString(v) > 256 {
			return awsapi.Validation("tags", "value of tag %q must be at most 256 characters long", k)
		}
		if !tagRe.MatchString(v) {
			return awsapi.Validation("tags", "value of tag %q may hold only letters, digits, spaces and _ . : / = + - @", k)
		}
	}
	return nil
}

func validateKMSKeyARN(arn *string) error {
	if arn == nil {
		return nil
	}
	if n := len(*arn); n < 20 || n > 2048 || !kmsKeyARNRe.MatchString(*arn) {
		return awsapi.Validation("kmsKeyArn", "kmsKeyArn %q is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)", *arn)
	}
	return nil
}

func validateWorkspaceID(id string) error {
	if n := len(id); n < 1 || n > 64 || !blocks.ValidWorkspace(id) {
		return awsapi.Validation("workspaceId", "workspaceId %q is not a valid workspace id", id)
	}
	return nil
}

func validateRetention(days *int) error {
	if days == nil {
		return nil
	}
	if *days < 1 || *days > maxRetentionDays {
		return awsapi.Validation("retentionPeriodInDays", "retentionPeriodInDays must be between 1 and %d, got %d", maxRetentionDays, *days)
	}
	return nil
}

func validateLimitsPerLabelSet(sets []limitsPerLabelSet) error {
	const field = "limitsPerLabelSet"
	if len(sets) > maxLimitsPerLabelSet {
		return awsapi.Validation(field, "at most %d label sets may be limited, got %d", maxLimitsPerLabelSet, len(sets))
	}
	seen := map[string]bool{}
	for i, s := range sets {
		if s.LabelSet == nil {
			return awsapi.Validation(field, "limitsPerLabelSet[%d].labelSet is required", i)
		}
		if s.Limits == nil {
			return awsapi.Validation(field, "limitsPerLabelSet[%d].limits is required", i)
		}
		if s.Limits.MaxSeries != nil && *s.Limits.MaxSeries < 0 {
			return awsapi.Validation(field, "limitsPerLabelSet[%d].limits.maxSeries must not be negative", i)
		}
		for name, value := range s.LabelSet {
			if !labelNameRe.MatchString(name) {
				return awsapi.Validation(field, "limitsPerLabelSet[%d].labelSet: %q is not a valid label name", i, name)
			}
			if value == "" {
				return awsapi.Validation(field, "limitsPerLabelSet[%d].labelSet: value of label %q must not be empty", i, name)
			}
			if !utf8.ValidString(value) {
				return awsapi.Validation(field, "limitsPerLabelSet[%d].labelSet: value of label %q is not valid UTF-8", i, name)
			}
		}
		key := labelSetKey(s.LabelSet)
		if seen[key] {
			return awsapi.Validation(field, "limitsPerLabelSet[%d]: label set %s appears more than once", i, key)
		}
		seen[key] = true
	}
	return nil
}

// labelSetKey renders a label set in Prometheus' {a="b", c="d"} form, sorted.
func labelSetKey(ls map[string]string) string {
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", n, ls[n])
	}
	b.WriteByte('}')
	return b.String()
}
