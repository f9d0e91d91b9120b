// Package modules runs the components of a process as named modules with dependencies,
// in the manner of Cortex's modules and dskit's services: a module is initialised after
// the modules it depends on, started after them and stopped before them, so the order
// of a shutdown is a property of the graph ("stop accepting writes before closing the
// TSDBs"), not of a comment.
package modules

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Service is a running component. Run blocks until ctx is cancelled, which is a clean
// stop (nil), or until the component fails. A Run that returns nil before its context
// is cancelled has finished its work; that stops nothing else.
type Service interface {
	Run(ctx context.Context) error
}

// ServiceFunc adapts a function to Service.
type ServiceFunc func(ctx context.Context) error

// Run implements Service.
func (f ServiceFunc) Run(ctx context.Context) error { return f(ctx) }

// Module is one component of a process.
type Module struct {
	// Deps are the modules this one needs: they are initialised and started before it
	// and stopped after it.
	Deps []string
	// Init builds the module (its dependencies are built). The Service it returns, if
	// any, is started by Manager.Run. Nil for a module that only groups others.
	Init func() (Service, error)
	// Close releases what Init opened, once the module has stopped (or when a module
	// initialised after it fails). Optional.
	Close func() error
}

// Manager holds the modules of a process. It is not safe for concurrent use.
type Manager struct {
	modules map[string]Module
	// inited are the modules initialised so far, in order, with their services.
	inited []initedModule
}

type initedModule struct {
	name string
	svc  Service
	mod  Module
}

// New returns an empty Manager.
func New() *Manager { return &Manager{modules: map[string]Module{}} }

// Register adds a module. A name registered twice panics: it is a programming error.
func (m *Manager) Register(name string, mod Module) {
	if _, ok := m.modules[name]; ok {
		panic(fmt.Sprintf("module %q registered twice", name))
	}
	m.modules[name] = mod
}

// Order returns the targets and every module they depend on, each after its
// dependencies; among modules free to go in either order, the first target's go first,
// then by name, so the order is the same on every run.
func (m *Manager) Order(targets ...string) ([]string, error) {
	var (
		order []string
		state = map[string]int{} // 1: visiting, 2: done
		visit func(name string, path []string) error
	)
	visit = func(name string, path []string) error {
		mod, ok := m.modules[name]
		if !ok {
			if len(path) == 0 {
				return fmt.Errorf("unknown module %q", name)
			}
			return fmt.Errorf("module %q depends on unknown module %q", path[len(path)-1], name)
		}
		switch state[name] {
		case 1:
			return fmt.Errorf("dependency cycle: %s -> %s", strings.Join(path, " -> "), name)
		case 2:
			return nil
		}
		state[name] = 1
		deps := slices.Clone(mod.Deps)
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, t := range targets {
		if err := visit(t, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Init initialises the targets and their dependencies in Order. When one fails, the
// modules initialised so far are closed, newest first, and the error names the module.
func (m *Manager) Init(targets ...string) error {
	order, err := m.Order(targets...)
	if err != nil {
		return err
	}
	for _, name := range order {
		mod := m.modules[name]
		var svc Service
		if mod.Init != nil {
			if svc, err = mod.Init(); err != nil {
				return errors.Join(fmt.Errorf("%s: %w", name, err), m.close())
			}
		}
		m.inited = append(m.inited, initedModule{name: name, svc: svc, mod: mod})
	}
	return nil
}

// Initialised returns the names of the initialised modules, in order.
func (m *Manager) Initialised() []string {
	out := make([]string, len(m.inited))
	for i, im := range m.inited {
		out[i] = im.name
	}
	return out
}

// Run starts the services of the initialised modules, in order, and runs them until ctx
// is done or one of them fails. Then it stops them in reverse order, each only once the
// modules depending on it have stopped (a module's context is cancelled once those that
// come after it have returned), and closes every module, newest first. It returns the
// failures, each naming its module.
func (m *Manager) Run(ctx context.Context) error {
	type running struct {
		name   string
		cancel context.CancelFunc
		done   chan struct{}
		err    error // of Run; a context.Canceled after the stop is a clean stop
	}
	failures := make(chan *running, len(m.inited))
	runs := make([]*running, 0, len(m.inited))
	for _, im := range m.inited {
		if im.svc == nil {
			continue
		}
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r := &running{name: im.name, cancel: cancel, done: make(chan struct{})}
		runs = append(runs, r)
		go func(svc Service) {
			defer close(r.done)
			err := svc.Run(sctx)
			if sctx.Err() != nil && errors.Is(err, context.Canceled) {
				err = nil
			}
			r.err = err
			if err != nil {
				failures <- r
			}
		}(im.svc)
	}
	select {
	case <-ctx.Done():
	case <-failures: // the first failure stops the process
	}
	for i := len(runs) - 1; i >= 0; i-- {
		runs[i].cancel()
		<-runs[i].done
	}
	var errs []error
	for _, r := range runs {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
		}
	}
	return errors.Join(append(errs, m.close())...)
}

// close closes the initialised modules, newest first, and forgets them.
func (m *Manager) close() error {
	var errs []error
	for i := len(m.inited) - 1; i >= 0; i-- {
		im := m.inited[i]
		if im.mod.Close == nil {
			continue
		}
		if err := im.mod.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing %s: %w", im.name, err))
		}
	}
	m.inited = nil
	return errors.Join(errs...)
}
