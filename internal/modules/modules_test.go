package modules

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// log records events in the order they happen.
type log struct {
	mu     sync.Mutex
	events []string
}

func (l *log) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *log) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// graph registers: server -> {api}, api -> {querier, distributor}, distributor ->
// {ingester}, querier -> {ingester, store}, ingester -> {bucket}, store -> {bucket}.
// started is signalled once per running service.
func graph(l *log, started chan<- string, fail map[string]error) *Manager {
	m := New()
	add := func(name string, deps ...string) {
		m.Register(name, Module{
			Deps: deps,
			Init: func() (Service, error) {
				l.add("init " + name)
				if err := fail["init "+name]; err != nil {
					return nil, err
				}
				if name == "bucket" {
					return nil, nil // nothing to run
				}
				return ServiceFunc(func(ctx context.Context) error {
					l.add("start " + name)
					started <- name
					if err := fail["run "+name]; err != nil {
						return err
					}
					<-ctx.Done()
					l.add("stop " + name)
					return nil
				}), nil
			},
			Close: func() error { l.add("close " + name); return nil },
		})
	}
	add("bucket")
	add("ingester", "bucket")
	add("store", "bucket")
	add("distributor", "ingester")
	add("querier", "store", "ingester")
	add("api", "querier", "distributor")
	add("server", "api")
	return m
}

func TestOrder(t *testing.T) {
	m := graph(&log{}, nil, nil)
	for _, c := range []struct {
		targets []string
		want    string
	}{
		{[]string{"server"}, "bucket ingester distributor store querier api server"},
		{[]string{"querier"}, "bucket ingester store querier"},
		{[]string{"distributor", "store"}, "bucket ingester distributor store"},
		{[]string{"store", "distributor"}, "bucket store ingester distributor"},
	} {
		got, err := m.Order(c.targets...)
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("Order(%v) = %v, %v; want %s", c.targets, got, err, c.want)
		}
	}
	if _, err := m.Order("nope"); err == nil || !strings.Contains(err.Error(), `unknown module "nope"`) {
		t.Errorf("unknown target: %v", err)
	}
	m.Register("a", Module{Deps: []string{"b"}})
	m.Register("b", Module{Deps: []string{"a"}})
	m.Register("c", Module{Deps: []string{"missing"}})
	if _, err := m.Order("a"); err == nil || !strings.Contains(err.Error(), "cycle: a -> b -> a") {
		t.Errorf("cycle: %v", err)
	}
	if _, err := m.Order("c"); err == nil || !strings.Contains(err.Error(), `"c" depends on unknown module "missing"`) {
		t.Errorf("missing dependency: %v", err)
	}
}

// Services start in dependency order and stop in reverse, each after all that depend on
// it; then every module is closed, newest first.
func TestRunStartsAndStopsInOrder(t *testing.T) {
	l := &log{}
	started := make(chan string, 10)
	m := graph(l, started, nil)
	if err := m.Init("server"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	for range 6 {
		<-started
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ev := l.get()
	var stops, closes []string
	for _, e := range ev {
		if name, ok := strings.CutPrefix(e, "stop "); ok {
			stops = append(stops, name)
		}
		if name, ok := strings.CutPrefix(e, "close "); ok {
			closes = append(closes, name)
		}
	}
	if want := "server api querier store distributor ingester"; strings.Join(stops, " ") != want {
		t.Errorf("stopped %v, want %s", stops, want)
	}
	if want := "server api querier store distributor ingester bucket"; strings.Join(closes, " ") != want {
		t.Errorf("closed %v, want %s", closes, want)
	}
	if i, j := slices.Index(ev, "stop ingester"), slices.Index(ev, "close server"); i > j {
		t.Errorf("modules closed before every service stopped: %v", ev)
	}
}

// A failing service stops the others and Run returns its error; a failing Init closes
// what was initialised before it.
func TestFailures(t *testing.T) {
	l := &log{}
	started := make(chan string, 10)
	m := graph(l, started, map[string]error{"run querier": errors.New("disk on fire")})
	if err := m.Init("server"); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	if err == nil || err.Error() != "querier: disk on fire" {
		t.Fatalf("Run = %v", err)
	}
	if ev := l.get(); !slices.Contains(ev, "stop ingester") || !slices.Contains(ev, "close bucket") {
		t.Fatalf("not everything stopped and closed: %v", ev)
	}

	l = &log{}
	m = graph(l, started, map[string]error{"init querier": errors.New("no such directory")})
	err = m.Init("server")
	if err == nil || !strings.Contains(err.Error(), "querier: no such directory") {
		t.Fatalf("Init = %v", err)
	}
	if got, want := l.get(), []string{"init bucket", "init ingester", "init distributor", "init store", "init querier",
		"close store", "close distributor", "close ingester", "close bucket"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}
