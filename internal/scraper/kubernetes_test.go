package scraper

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/value"

	"github.com/stratametrics/strata/internal/meta"
)

// kubeAPI serves the part of a Kubernetes API server that kubernetes_sd_configs with
// role pod reads through client-go: the list of pods and a watch of them. No real
// cluster can run here; this stands for its API server, and everything on the client
// side (kubeconfig, client-go's informers, Prometheus' discovery) is the real thing.
type kubeAPI struct {
	mu       sync.Mutex
	pods     []map[string]any
	version  int
	watchers []chan map[string]any // events to each open watch
	requests []string
}

func (k *kubeAPI) setPods(pods ...map[string]any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.version++
	old := k.pods
	k.pods = pods
	for _, p := range old {
		if !containsPod(pods, p) {
			k.send(map[string]any{"type": "DELETED", "object": k.versioned(p)})
		}
	}
	for _, p := range pods {
		k.send(map[string]any{"type": "ADDED", "object": k.versioned(p)})
	}
}

func containsPod(pods []map[string]any, p map[string]any) bool {
	name := p["metadata"].(map[string]any)["name"]
	for _, q := range pods {
		if q["metadata"].(map[string]any)["name"] == name {
			return true
		}
	}
	return false
}

// versioned returns the pod with the current resource version.
func (k *kubeAPI) versioned(p map[string]any) map[string]any {
	md := map[string]any{}
	for key, v := range p["metadata"].(map[string]any) {
		md[key] = v
	}
	md["resourceVersion"] = strconv.Itoa(k.version)
	out := map[string]any{"kind": "Pod", "apiVersion": "v1"}
	for key, v := range p {
		out[key] = v
	}
	out["metadata"] = md
	return out
}

func (k *kubeAPI) send(ev map[string]any) {
	for _, w := range k.watchers {
		select {
		case w <- ev:
		default: // a watcher that does not read is dropped by its own timeout
		}
	}
}

func (k *kubeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.requests = append(k.requests, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
	k.mu.Unlock()
	if r.URL.Path != "/api/v1/pods" {
		status(w, http.StatusNotFound, "NotFound", r.URL.Path+" is not served here")
		return
	}
	q := r.URL.Query()
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		k.mu.Lock()
		items := make([]map[string]any, 0, len(k.pods))
		for _, p := range k.pods {
			items = append(items, k.versioned(p))
		}
		list := map[string]any{"kind": "PodList", "apiVersion": "v1", "metadata": map[string]any{"resourceVersion": strconv.Itoa(k.version)}, "items": items}
		k.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
		return
	}
	if q.Get("sendInitialEvents") == "true" {
		// Streaming lists are newer than this stand-in: client-go lists instead.
		status(w, http.StatusBadRequest, "BadRequest", "sendInitialEvents is not supported")
		return
	}
	events := make(chan map[string]any, 16)
	k.mu.Lock()
	k.watchers = append(k.watchers, events)
	k.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-events:
			if enc.Encode(ev) != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": msg, "reason": reason, "code": code})
}

// pod is a running, ready pod at ip exposing its metrics on port.
func pod(name, ip string, port int) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"name": name, "namespace": "shop", "uid": "uid-" + name, "labels": map[string]any{"app": "cart"}},
		"spec": map[string]any{"nodeName": "node-1", "containers": []any{map[string]any{
			"name": "app", "ports": []any{map[string]any{"name": "metrics", "containerPort": port, "protocol": "TCP"}}}}},
		"status": map[string]any{"phase": "Running", "podIP": ip, "hostIP": "10.0.0.1",
			"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}},
	}
}

// A scraper whose source is an EKS cluster finds its targets with kubernetes_sd_configs
// through the kubeconfig --scraper.clusters-file maps the cluster's ARN to: the pods the
// API server lists are scraped with their metadata as labels, and a pod that goes away
// stops being scraped (its series end with stale markers).
func TestKubernetesDiscovery(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# TYPE cart_items gauge\ncart_items 7\n")
	}))
	t.Cleanup(target.Close)
	host, portText, err := net.SplitHostPort(strings.TrimPrefix(target.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portText)
	api := &kubeAPI{}
	api.setPods(pod("cart-0", host, port))
	// TLS: client-go sends a kubeconfig's credentials only to an https server.
	apiServer := httptest.NewTLSServer(api)
	t.Cleanup(apiServer.Close)
	ca := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: apiServer.Certificate().Raw}))

	dir := t.TempDir()
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c1, cluster: {server: %q, certificate-authority-data: %s}}]
users: [{name: scraper, user: {token: scraper-token}}]
contexts: [{name: c1, context: {cluster: c1, user: scraper}}]
current-context: c1
`, apiServer.URL, ca)
	if err := os.WriteFile(filepath.Join(dir, "c1.kubeconfig"), []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	const arn = "arn:aws:eks:us-east-1:123456789012:cluster/c1"
	clusters := filepath.Join(dir, "clusters.yaml")
	if err := os.WriteFile(clusters, []byte("clusters:\n  - arn: "+arn+"\n    kubeconfig: c1.kubeconfig\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	blob := `global:
  scrape_interval: 100ms
  scrape_timeout: 100ms
scrape_configs:
  - job_name: pods
    kubernetes_sd_configs: [{role: pod}]
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_label_app], regex: cart, action: keep}
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
`
	cfg := testConfig()
	cfg.ClustersFile = clusters
	wss := &workspaces{}
	sc := scraperOf("s-k8s", blob)
	sc.ClusterARN = arn
	wss.set(meta.Workspace{ID: "ws-a", Status: meta.StatusActive, Scrapers: map[string]*meta.Scraper{sc.ID: sc}})
	w := newWriter()
	m, err := New(cfg, Deps{Workspaces: wss, Writer: w, Registerer: prometheus.NewRegistry(), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m.Sync(context.Background())
	t.Cleanup(m.stopAll)
	if len(m.collectors) != 1 {
		t.Fatalf("collectors %v: the scraper did not start", m.collectors)
	}

	instance := net.JoinHostPort(host, portText)
	series := func(name string) string {
		return fmt.Sprintf(`__name__=%q,instance=%q,job="pods",namespace="shop",pod="cart-0",`, name, instance)
	}
	waitFor(t, "the discovered pod's samples with its metadata as labels", func() bool {
		v, ok := w.value("ws-a", series("cart_items"))
		up, upOK := w.value("ws-a", series("up"))
		return ok && v == 7 && upOK && up == 1
	})
	api.mu.Lock()
	requests := strings.Join(api.requests, "\n")
	api.mu.Unlock()
	// Listed and watched with the kubeconfig's credentials.
	if !strings.Contains(requests, "GET /api/v1/pods?limit=500&resourceVersion=0 Bearer scraper-token") || !strings.Contains(requests, "watch=true") {
		t.Fatalf("the API server saw:\n%s", requests)
	}

	// The pod goes: the watch tells discovery, and the target's series go stale.
	api.setPods()
	waitFor(t, "the deleted pod's series to end with stale markers", func() bool {
		v, _ := w.value("ws-a", series("cart_items"))
		up, _ := w.value("ws-a", series("up"))
		return value.IsStaleNaN(v) && value.IsStaleNaN(up)
	})
}
