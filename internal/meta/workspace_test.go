package meta

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Rule groups namespaces and the alert manager definition are stored with the workspace,
// read back whole by another process, and copied deeply (but for their immutable data).
func TestRulesAndDefinitionRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := newStore(t, dir)
	now := time.Now().UTC().Truncate(time.Millisecond)
	w := ws("ws-1", now)
	w.RuleGroupsNamespaces = map[string]*RuleGroupsNamespace{
		"ns": {Name: "ns", ARN: "arn:ns", Data: []byte("groups: []\n"), Status: StatusActive, CreatedAt: now, ModifiedAt: now,
			Tags: map[string]string{"t": "1"}, RuleGroups: 2, Rules: 3, ClientToken: "c", RequestHash: "h", DeleteClientToken: "d"},
	}
	w.AlertManagerDefinition = &AlertManagerDefinition{Data: []byte("alertmanager_config: x\n"), Status: StatusUpdateFailed, StatusReason: "why",
		CreatedAt: now, ModifiedAt: now, ClientToken: "c", RequestHash: "h"}
	if err := s.CreateWorkspace(ctx, w); err != nil {
		t.Fatal(err)
	}
	got, err := newStore(t, dir).GetWorkspace(ctx, "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	ns := got.RuleGroupsNamespaces["ns"]
	if ns == nil || string(ns.Data) != "groups: []\n" || ns.Rules != 3 || ns.RuleGroups != 2 || ns.Tags["t"] != "1" ||
		ns.ClientToken != "c" || ns.RequestHash != "h" || ns.DeleteClientToken != "d" || !ns.ModifiedAt.Equal(now) {
		t.Fatalf("namespace read back: %+v", ns)
	}
	d := got.AlertManagerDefinition
	if d == nil || string(d.Data) != "alertmanager_config: x\n" || d.Status != StatusUpdateFailed || d.StatusReason != "why" || d.RequestHash != "h" {
		t.Fatalf("definition read back: %+v", d)
	}
	// Copies are the caller's.
	ns.Tags["t"] = "changed"
	ns.Data = []byte("x")
	d.Data = []byte("y")
	got.RuleGroupsNamespaces["other"] = &RuleGroupsNamespace{}
	again, _ := s.GetWorkspace(ctx, "ws-1")
	if again.RuleGroupsNamespaces["ns"].Data[0] != 'g' || again.RuleGroupsNamespaces["ns"].Tags["t"] != "1" ||
		again.AlertManagerDefinition.Data[0] != 'a' || len(again.RuleGroupsNamespaces) != 1 {
		t.Fatal("a returned workspace aliases the cache")
	}
}

// A record that would not be read back whole is not written.
func TestRecordSizeBound(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, t.TempDir())
	s.SetMaxRecordBytes(4096)
	w := ws("ws-1", time.Now())
	if err := s.CreateWorkspace(ctx, w); err != nil {
		t.Fatal(err)
	}
	_, err := s.UpdateWorkspace(ctx, "ws-1", func(w *Workspace) error {
		w.RuleGroupsNamespaces = map[string]*RuleGroupsNamespace{"big": {Name: "big", Data: []byte(strings.Repeat("x", 4096))}}
		return nil
	})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("update beyond the bound: %v", err)
	}
	if got, _ := s.GetWorkspace(ctx, "ws-1"); len(got.RuleGroupsNamespaces) != 0 {
		t.Fatal("a refused update was applied")
	}
	big := ws("ws-2", time.Now())
	big.Alias = strings.Repeat("a", 5000)
	if err := s.CreateWorkspace(ctx, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("create beyond the bound: %v", err)
	}
	if _, err := s.GetWorkspace(ctx, "ws-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused create was stored: %v", err)
	}
	// The bound is never raised above what a read takes.
	s.SetMaxRecordBytes(1 << 30)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.maxRecordBytes != MaxRecordBytes || MaxRecordBytes != maxObjectBytes {
		t.Fatalf("bound %d, reads take %d", s.maxRecordBytes, maxObjectBytes)
	}
}
