// Package chtest starts throwaway ClickHouse and Redis servers for tests:
// the Debian clickhouse-server (18.16 in CI) and redis-server binaries, on
// free loopback ports, with their data in the test's temporary directory.
// Servers are stopped when the test ends. Both helpers skip the test under
// -short and fail it when the binary is missing.
package chtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a server may take to answer.
const startTimeout = 30 * time.Second

// ClickHouseServer is a running test ClickHouse.
type ClickHouseServer struct {
	// Addr is host:port of the native (TCP) interface.
	Addr string
	// HTTPAddr is host:port of the HTTP interface.
	HTTPAddr string
}

// Conn opens a native-protocol connection to the server's default database
// and closes it when the test ends.
func (s ClickHouseServer) Conn(tb testing.TB) driver.Conn {
	tb.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.Addr}})
	if err != nil {
		tb.Fatalf("open clickhouse %s: %v", s.Addr, err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

// StartClickHouse starts clickhouse-server with a minimal config in a
// temporary directory and waits until it answers a ping. It skips the test
// under -short.
func StartClickHouse(tb testing.TB) ClickHouseServer {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs clickhouse-server (skipped with -short)")
	}
	bin, err := exec.LookPath("clickhouse-server")
	if err != nil {
		tb.Fatalf("clickhouse-server not installed (apt-get install clickhouse-server): %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken before the server binds it
		dir := tb.TempDir()
		tcpPort, httpPort := freePort(tb), freePort(tb)
		srv := ClickHouseServer{
			Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort)),
			HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		}
		if err := writeClickHouseConfig(dir, tcpPort, httpPort); err != nil {
			tb.Fatal(err)
		}
		exited, err := startProcess(tb, dir, bin, "--config-file="+filepath.Join(dir, "config.xml"))
		if err != nil {
			tb.Fatal(err)
		}
		lastErr = waitReady(exited, func(ctx context.Context) error {
			conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr}, DialTimeout: time.Second})
			if err != nil {
				return err
			}
			defer conn.Close()
			return conn.Ping(ctx)
		})
		if lastErr == nil {
			return srv
		}
	}
	tb.Fatalf("clickhouse-server did not start: %v", lastErr)
	return ClickHouseServer{}
}

// StartRedis starts redis-server without persistence on a free loopback
// port and returns its host:port once it answers PING. It skips the test
// under -short.
func StartRedis(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs redis-server (skipped with -short)")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server not installed (apt-get install redis-server): %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		dir := tb.TempDir()
		port := freePort(tb)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		exited, err := startProcess(tb, dir, bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
		if err != nil {
			tb.Fatal(err)
		}
		lastErr = waitReady(exited, func(ctx context.Context) error {
			c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
			defer c.Close()
			return c.Ping(ctx).Err()
		})
		if lastErr == nil {
			return addr
		}
	}
	tb.Fatalf("redis-server did not start: %v", lastErr)
	return ""
}

// startProcess starts bin in dir with its output in dir/server.log and
// registers a cleanup that stops it (SIGTERM, then SIGKILL after 10 s). The
// returned channel is closed when the process exits.
func startProcess(tb testing.TB, dir, bin string, args ...string) (<-chan struct{}, error) {
	tb.Helper()
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(exited)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if tb.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "server.log")); err == nil && len(b) > 0 {
				tb.Logf("%s log:\n%s", filepath.Base(bin), tail(b, 4000))
			}
		}
	})
	return exited, nil
}

// waitReady polls ready until it succeeds, the process exits or
// startTimeout passes.
func waitReady(exited <-chan struct{}, ready func(ctx context.Context) error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("server exited (see its log)")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func writeClickHouseConfig(dir string, tcpPort, httpPort int) error {
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("clickhouse dirs: %w", err)
		}
	}
	cfg := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>%d</tcp_port>
  <http_port>%d</http_port>
  <path>%[3]s/data/</path>
  <tmp_path>%[3]s/tmp/</tmp_path>
  <user_files_path>%[3]s/user_files/</user_files_path>
  <format_schema_path>%[3]s/format_schemas/</format_schema_path>
  <users_config>%[3]s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
`, tcpPort, httpPort, dir)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("clickhouse config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644); err != nil {
		return fmt.Errorf("clickhouse users: %w", err)
	}
	return nil
}
