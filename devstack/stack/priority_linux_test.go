package stack_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/streamwatch/streamwatch/devstack/stack"
)

// TestClickHouseMergesRunNiced checks that the dev stack gives ClickHouse's
// merge threads, created with the first MergeTree table, the lowest
// priority (nice 19), and leaves the threads that serve inserts and queries
// at the priority ClickHouse started with.
func TestClickHouseMergesRunNiced(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s := startStack(t, ctx, stack.Options{DataDir: t.TempDir(), SkipServices: true})
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.ClickHouseAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Exec(ctx, "CREATE TABLE "+stack.ClickHouseDatabase+".nice_test (x UInt64) ENGINE = MergeTree ORDER BY x")
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	pid := s.PID("clickhouse")
	var merges, others map[int]int
	deadline := time.After(30 * time.Second) // the stack looks every 2 s
	for {
		merges, others = threadNices(t, pid, "BackgrProcPool")
		done := len(merges) > 0
		for _, n := range merges {
			done = done && n == 19
		}
		if done {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("merge threads %v (tid: nice), want at least one, all at nice 19", merges)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if len(others) == 0 {
		t.Fatal("no other ClickHouse threads found")
	}
	for tid, n := range others {
		if n != 0 {
			t.Errorf("thread %d that does not merge has nice %d, want 0", tid, n)
		}
	}
}

// threadNices reads the nice value (field 19 of /proc/<pid>/task/<tid>/stat)
// of every thread of pid, split by whether its name starts with prefix.
func threadNices(t *testing.T, pid int, prefix string) (matching, others map[int]int) {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	matching, others = map[int]int{}, map[int]int{}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		stat, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: the name may hold spaces, so split
		// after its closing parenthesis; nice is the 17th field after it.
		open, end := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
		fields := strings.Fields(string(stat[end+1:]))
		nice, err := strconv.Atoi(fields[16])
		if err != nil {
			t.Fatalf("stat of thread %d: %q", tid, stat)
		}
		if strings.HasPrefix(string(stat[open+1:end]), prefix) {
			matching[tid] = nice
		} else {
			others[tid] = nice
		}
	}
	return matching, others
}
