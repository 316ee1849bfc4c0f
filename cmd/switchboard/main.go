// Command switchboard serves Switchboard: an LLM and any number of MCP tool
// servers behind one chat API.
//
// Usage:
//
//	switchboard [serve] [--config FILE]   run the service (default)
//	switchboard migrate [--config FILE]   apply database migrations
//	switchboard token --user ID [--admin] mint a development token
//	switchboard tools [--config FILE]     connect to the MCP servers and print the tool catalog
//	switchboard agents [--config FILE]    print the agents with their tools and handoffs, and what is wrong
//	switchboard healthcheck              probe the local server's /healthz
//	switchboard secrets rotate           seal credentials again under the current key
//	switchboard version
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

//go:embed default.yaml
var defaultConfig []byte

const defaultConfigPath = "configs/switchboard.yaml"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "switchboard:", err)
		os.Exit(1)
	}
}

// env reads the environment; os.LookupEnv in production.
type env func(string) (string, bool)

// run is the whole program: it parses args, runs the subcommand, and returns
// when it is done or ctx is cancelled.
func run(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stderr)
	case "token":
		return token(args, getenv, stdout, stderr)
	case "tools":
		return listTools(ctx, args, getenv, stdout, stderr)
	case "agents":
		return listAgents(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "switchboard", version())
		return nil
	case "healthcheck":
		return healthcheck(ctx, args, getenv, stdout)
	case "secrets":
		return secretsCommand(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

const usage = `usage:
  switchboard [serve] [--config FILE]    run the service (default)
  switchboard migrate [--config FILE] [--database-url URL]
                                         apply database migrations
  switchboard token --user ID [--admin] [--ttl 24h]
                                         mint a development token (HS256, auth.jwt_secret)
  switchboard tools [--config FILE]      connect to the MCP servers and print the tool catalog
  switchboard agents [--config FILE]     print each agent's model, tools and handoffs, and what is wrong
  switchboard healthcheck [--config FILE]
                                         exit 0 if the local server answers /healthz (for containers)
  switchboard secrets rotate [--config FILE]
                                         seal users' credentials again under secrets_key's first key
  switchboard version
The config file defaults to $SWITCHBOARD_CONFIG, else configs/switchboard.yaml, else the built-in default.
`

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return v
	}
	return "unknown"
}

// configFlag registers --config on fs, defaulting to $SWITCHBOARD_CONFIG.
func configFlag(fs *flag.FlagSet, getenv env) *string {
	def, _ := getenv("SWITCHBOARD_CONFIG")
	return fs.String("config", def, "config file (YAML or JSON)")
}
