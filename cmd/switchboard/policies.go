package main

import (
	"sync/atomic"

	"github.com/switchboard-dev/switchboard"
)

// loopPolicies are the per-server policies of the agent loop (approval,
// parallelism, output budgets), read from the configuration and replaced
// when it is reloaded.
type loopPolicies struct {
	servers atomic.Pointer[map[string]ServerConfig]
}

func newLoopPolicies(cfg *Config) *loopPolicies {
	p := &loopPolicies{}
	p.set(cfg)
	return p
}

func (p *loopPolicies) set(cfg *Config) {
	servers := cfg.MCPServers
	p.servers.Store(&servers)
}

func (p *loopPolicies) server(name string) ServerConfig { return (*p.servers.Load())[name] }

// requireApproval implements orchestrator.Options.RequireApproval.
func (p *loopPolicies) requireApproval(server, tool string, a switchboard.ToolAnnotations) bool {
	switch p.server(server).RequireApproval.For(tool) {
	case ApprovalAlways:
		return true
	case ApprovalDestructive:
		return a.IsDestructive()
	}
	return false
}

// parallel implements orchestrator.Options.Parallel.
func (p *loopPolicies) parallel(server string) bool { return p.server(server).Parallel }

// outputBudget implements orchestrator.Options.OutputBudget; 0 means the
// default.
func (p *loopPolicies) outputBudget(server, tool string) int {
	s := p.server(server)
	if b, ok := s.ToolOutputBudgets[tool]; ok {
		return b
	}
	return s.OutputBudget
}
