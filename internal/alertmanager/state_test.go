package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/thanos-io/objstore"
)

func TestReconfigureKeepsSilences(t *testing.T) {
	f := newFixture(t)
	hook1, hook2 := newWebhook(t), newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook1.url()), nil))
	f.sync()
	id := f.createSilence("ws-a", map[string]string{"instance": "silenced"})

	// A new definition: another receiver URL. The silence holds.
	f.setDefinition("ws-a", definition(t, hookConfig(hook2.url()), nil))
	f.sync()
	f.postAlerts("ws-a",
		map[string]string{"alertname": "Down", "instance": "silenced"},
		map[string]string{"alertname": "Down", "instance": "loud"})
	m := hook2.next(t)
	if got := joined(m.names("instance")); got != "loud" {
		t.Fatalf("notified %q after reconfiguring, want only the unsilenced alert", got)
	}
	var sil models.GettableSilence
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "silence/"+id, nil), &sil); err != nil {
		t.Fatal(err)
	}

	// A definition that does not load leaves the previous one in force, and says so.
	f.setDefinition("ws-a", definition(t, "route:\n  receiver: nowhere\nreceivers:\n- name: hook\n", nil))
	f.sync()
	if !strings.Contains(f.logs.String(), "workspace=ws-a") || !strings.Contains(f.logs.String(), `undefined receiver \"nowhere\"`) {
		t.Errorf("no log line naming the workspace and the error:\n%s", f.logs.String())
	}
	if v, _ := f.metric("strata_alertmanager_config_last_apply_successful", map[string]string{"workspace": "ws-a"}); v != 0 {
		t.Errorf("config_last_apply_successful %v after a failed load, want 0", v)
	}
	if v, _ := f.metric("strata_alertmanager_definition_load_failures_total", nil); v != 1 {
		t.Errorf("definition_load_failures_total %v, want 1", v)
	}
	f.sync() // the same bad definition is not tried (nor logged) again
	if v, _ := f.metric("strata_alertmanager_definition_load_failures_total", nil); v != 1 {
		t.Errorf("definition_load_failures_total %v after a second sync, want 1", v)
	}
	f.postAlerts("ws-a", map[string]string{"alertname": "StillRouted"})
	if m := hook2.next(t); joined(m.names("alertname")) != "StillRouted" {
		t.Fatalf("notification after a failed load: %+v", m)
	}
	// Removing the definition stops the Alertmanager.
	f.setDefinition("ws-a", "")
	f.sync()
	f.mustDo(http.StatusNotFound, http.MethodGet, "ws-a", "status", nil)
	if got := f.m.Running(); len(got) != 0 {
		t.Errorf("running after the definition was removed: %v", got)
	}
}

// A new process on the same bucket (and another disk) keeps the silences, and does not
// notify again what was notified before the restart.
func TestRestartKeepsState(t *testing.T) {
	f := newFixture(t)
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	id := f.createSilence("ws-a", map[string]string{"instance": "silenced"})
	f.postAlerts("ws-a", map[string]string{"alertname": "Before", "instance": "a"})
	if m := hook.next(t); joined(m.names("instance")) != "a" {
		t.Fatalf("notification: %+v", m)
	}
	// The notification is logged right after the receiver answers.
	waitFor(t, "the notification log entry", func() bool {
		b, err := f.m.tenant("ws-a").nflog.MarshalBinary()
		return err == nil && len(b) > 0
	})

	f.restart(t.TempDir())
	f.sync()
	var sil models.GettableSilence
	if err := json.Unmarshal(f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "silence/"+id, nil), &sil); err != nil {
		t.Fatal(err)
	}
	if *sil.Status.State != "active" {
		t.Fatalf("silence after restart: %+v", sil)
	}

	// The alert comes again, as Prometheus resends it: its group flushes, the
	// notification log says it was notified, and nothing is sent. Only then a new alert
	// joins the group; the next flush notifies both. A duplicate would have come first.
	f.postAlerts("ws-a", map[string]string{"alertname": "Before", "instance": "a"})
	t1 := f.m.tenant("ws-a")
	waitFor(t, "the first flush after the restart", func() bool {
		return gather(t, t1, "alertmanager_nflog_queries_total") >= 1
	})
	f.postAlerts("ws-a",
		map[string]string{"alertname": "Before", "instance": "a"},
		map[string]string{"alertname": "Before", "instance": "b"},
		map[string]string{"alertname": "Before", "instance": "silenced"})
	m := hook.next(t)
	got := m.names("instance")
	slices.Sort(got)
	if joined(got) != "a,b" {
		t.Fatalf("first notification after the restart has %v, want a and b (a alone would be a duplicate; silenced left out)", got)
	}
}

// gather sums a metric of a workspace's own registry.
func gather(t *testing.T, tn *tenant, name string) float64 {
	t.Helper()
	mfs, err := tn.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func TestPersistAndDeleteWorkspace(t *testing.T) {
	f := newFixture(t)
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.createWorkspace("ws-b", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	f.postAlerts("ws-a", map[string]string{"alertname": "A"})
	hook.next(t)
	waitFor(t, "the notification log entry", func() bool {
		b, err := f.m.tenant("ws-a").nflog.MarshalBinary()
		return err == nil && len(b) > 0
	})
	if err := f.m.Persist(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, ws := range []string{"ws-a", "ws-b"} {
		for _, st := range states {
			if ok, err := f.bkt.Exists(ctx, objectName(ws, st)); err != nil || !ok {
				t.Errorf("%s not in the bucket (%v)", objectName(ws, st), err)
			}
			if _, err := os.Stat(filepath.Join(f.dataDir, ws, st)); err != nil {
				t.Errorf("working copy: %v", err)
			}
		}
	}
	before, _ := f.metric("strata_alertmanager_state_persists_total", map[string]string{"outcome": "success"})
	if err := f.m.Persist(ctx); err != nil {
		t.Fatal(err)
	}
	if after, _ := f.metric("strata_alertmanager_state_persists_total", map[string]string{"outcome": "success"}); after != before {
		t.Errorf("unchanged states written again: %v writes, then %v", before, after)
	}

	if err := f.m.DeleteWorkspace(ctx, "ws-a"); err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if ok, err := f.bkt.Exists(ctx, objectName("ws-a", st)); err != nil || ok {
			t.Errorf("%s still in the bucket (%v)", objectName("ws-a", st), err)
		}
		if ok, err := f.bkt.Exists(ctx, objectName("ws-b", st)); err != nil || !ok {
			t.Errorf("%s of another workspace deleted (%v)", objectName("ws-b", st), err)
		}
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, "ws-a")); !os.IsNotExist(err) {
		t.Errorf("working files of a deleted workspace: %v", err)
	}
	if got := f.m.Running(); !slices.Equal(got, []string{"ws-b"}) {
		t.Errorf("running after DeleteWorkspace: %v", got)
	}
	if _, ok := f.metric("strata_alertmanager_alerts_received_total", map[string]string{"workspace": "ws-a"}); ok {
		t.Error("metrics of a deleted workspace still exported")
	}
}

// failingBucket fails reads of the Alertmanager's state while fail is set.
type failingBucket struct {
	objstore.Bucket
	fail *atomic.Bool
}

func (b failingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if b.fail.Load() && strings.HasPrefix(name, bucketPrefix) {
		return nil, errors.New("bucket unavailable")
	}
	return b.Bucket.Get(ctx, name)
}

// A state that cannot be read from the bucket keeps the Alertmanager from starting (it
// would write an empty state over it) until it can be read.
func TestUnreadableStateIsNotOverwritten(t *testing.T) {
	var fail atomic.Bool
	f := newFixture(t, withBucket(func(b objstore.Bucket) objstore.Bucket { return failingBucket{b, &fail} }))
	hook := newWebhook(t)
	f.createWorkspace("ws-a", definition(t, hookConfig(hook.url()), nil))
	f.sync()
	id := f.createSilence("ws-a", map[string]string{"a": "b"})

	fail.Store(true)
	f.restart(t.TempDir())
	f.sync()
	f.mustDo(http.StatusNotFound, http.MethodGet, "ws-a", "status", nil)
	if !strings.Contains(f.logs.String(), "bucket unavailable") {
		t.Errorf("the failure is not logged:\n%s", f.logs.String())
	}
	fail.Store(false)
	f.sync()
	f.mustDo(http.StatusOK, http.MethodGet, "ws-a", "silence/"+id, nil)
}
