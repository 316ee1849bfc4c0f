package tools

import (
	"sync/atomic"

	"github.com/switchboard-dev/switchboard"
)

// Registry holds the current catalog. Turns take the catalog once, at their
// start (Current), so that replacing it (Set) never changes the tools under a
// running turn.
type Registry struct {
	cur atomic.Pointer[Catalog]
}

// NewRegistry returns a registry whose current catalog is c.
func NewRegistry(c *Catalog) *Registry {
	r := &Registry{}
	r.Set(c)
	return r
}

// Current returns the current catalog; never nil.
func (r *Registry) Current() *Catalog {
	if c := r.cur.Load(); c != nil {
		return c
	}
	return &Catalog{byName: map[string]*Entry{}}
}

// Set replaces the current catalog.
func (r *Registry) Set(c *Catalog) { r.cur.Store(c) }

// Tools describes the tools of the current catalog.
func (r *Registry) Tools() []switchboard.ToolInfo { return r.Current().Infos() }
