// Command streamwatch-dev runs the whole of Streamwatch on this machine:
// the embedded broker, Redis, ClickHouse and the five services, on
// 127.0.0.1.
//
// Usage:
//
//	streamwatch-dev up   [flags]   start the stack and run until Ctrl-C
//	streamwatch-dev demo [flags]   up, then replay an access log and show
//	                               what the query API reports
//	streamwatch-dev keygen -name N -scopes S [-tenant T]
//	                               print a new API key and its AUTH_KEYS line
//
// Run `streamwatch-dev up -h` for the flags. Lifecycle logs go to stderr as
// JSON; the summary for people goes to stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(run()) }

// run returns the exit status: 0 after a clean stop, 1 on failure, 2 on a
// usage error.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var level slog.LevelVar
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: &level}))

	err := execute(ctx, os.Args[1:], os.Stdout, os.Stderr, logger, &level)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp), errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintln(os.Stderr, "streamwatch-dev:", err)
		return 1
	}
}

// errUsage means the command line was wrong; the usage has been printed.
var errUsage = errors.New("usage")

// execute runs the subcommand named by args[0].
func execute(ctx context.Context, args []string, stdout, stderr io.Writer, logger *slog.Logger, level *slog.LevelVar) error {
	usage := func() {
		fmt.Fprintln(stderr, "usage: streamwatch-dev up|demo|keygen [flags]  (streamwatch-dev up -h lists the flags)")
	}
	if len(args) == 0 {
		usage()
		return errUsage
	}
	switch args[0] {
	case "up":
		cfg, err := parseFlags("up", args[1:], stderr, level)
		if err != nil {
			return err
		}
		return up(ctx, cfg, stdout, logger)
	case "demo":
		cfg, err := parseFlags("demo", args[1:], stderr, level)
		if err != nil {
			return err
		}
		return runDemo(ctx, cfg, stdout, logger)
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage()
		return flag.ErrHelp
	default:
		fmt.Fprintf(stderr, "unknown command %q\n", args[0])
		usage()
		return errUsage
	}
}
