package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries the stack runs, and the Debian packages that provide them.
const (
	redisBinary      = "redis-server"
	clickHouseBinary = "clickhouse-server"
)

// debianPackages are installed together: clickhouse-client is not needed by
// the stack but is what people reach for when debugging it.
func debianPackages() []string {
	return []string{"redis-server", "clickhouse-server", "clickhouse-client"}
}

// installCommand is the shell command that installs debianPackages.
func installCommand() string {
	return "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y " + strings.Join(debianPackages(), " ")
}

// MissingPackagesError reports server binaries that are not installed.
type MissingPackagesError struct {
	// Binaries are the missing executables, e.g. "clickhouse-server".
	Binaries []string
	// Command installs them; it must run as root.
	Command string
}

// Error names the missing binaries and the command that installs them.
func (e *MissingPackagesError) Error() string {
	return fmt.Sprintf("missing %s; install with: sudo sh -c '%s'", strings.Join(e.Binaries, ", "), e.Command)
}

// lookBinary finds name on PATH, then in /usr/sbin and /usr/bin: Debian puts
// clickhouse-server in /usr/sbin, which is not on a normal user's PATH. It
// returns the absolute path, or an error wrapping exec.ErrNotFound.
func lookBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// serverBinaries returns the paths of redis-server and clickhouse-server,
// or a *MissingPackagesError.
func serverBinaries() (redis, clickHouse string, err error) {
	var missing []string
	redis, err = lookBinary(redisBinary)
	if err != nil {
		missing = append(missing, redisBinary)
	}
	clickHouse, err = lookBinary(clickHouseBinary)
	if err != nil {
		missing = append(missing, clickHouseBinary)
	}
	if len(missing) > 0 {
		return "", "", &MissingPackagesError{Binaries: missing, Command: installCommand()}
	}
	return redis, clickHouse, nil
}

// EnsurePackages checks that redis-server and clickhouse-server are
// installed (on PATH or in /usr/sbin, /usr/bin). When one is missing and the
// process runs as root, it runs `apt-get update` and `apt-get install -y
// redis-server clickhouse-server clickhouse-client` non-interactively, which
// can take minutes; ctx bounds it. When not root it returns a
// *MissingPackagesError whose Command is the exact command to run. A failed
// install returns an error with the tail of apt-get's output.
func EnsurePackages(ctx context.Context, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	_, _, err := serverBinaries()
	var missing *MissingPackagesError
	if !errors.As(err, &missing) {
		return err
	}
	if os.Geteuid() != 0 {
		return missing
	}
	logger.Info("installing packages", "packages", debianPackages(), "missing", missing.Binaries)
	for _, args := range [][]string{
		{"update"},
		append([]string{"install", "-y"}, debianPackages()...),
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", args[0], err, lastLines(string(out), 20))
		}
	}
	if _, _, err := serverBinaries(); err != nil {
		return fmt.Errorf("after apt-get install: %w", err)
	}
	logger.Info("packages installed", "packages", debianPackages())
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
