package stack

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BuildServices compiles the named services (ServiceNames when none are
// named) from the checkout at repo into binDir, with `go build`. The error
// carries the compiler's output.
func BuildServices(ctx context.Context, repo, binDir string, names ...string) error {
	if len(names) == 0 {
		names = ServiceNames()
	}
	for _, s := range names {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, s), "./cmd/"+s)
		cmd.Dir = filepath.Join(repo, "services", s)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", s, err, out)
		}
	}
	return nil
}

// WaitDrained waits until the pipeline has processed everything written so
// far: on three polls in a row, 500 ms apart, every consumer group with
// members is Stable (a SIGKILLed member stays in its group until the session
// times out, and lag means nothing until then) and has lag 0 on every topic
// it reads. Groups are discovered from the broker; groups without members (a
// finished replay) are left out. It returns ctx's error, with the last
// state of the groups that were still busy, when ctx ends first.
func (s *Stack) WaitDrained(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers()...))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	last := "no poll yet"
	for quiet := 0; quiet < 3; {
		select {
		case <-ctx.Done():
			return fmt.Errorf("pipeline did not drain (%s): %w", last, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		busy, err := busyGroups(ctx, adm)
		switch {
		case err != nil:
			last, quiet = err.Error(), 0
		case len(busy) > 0:
			last, quiet = strings.Join(busy, ", "), 0
		default:
			quiet++
		}
	}
	return nil
}

// busyGroups lists the groups with members that are rebalancing or lag.
func busyGroups(ctx context.Context, adm *kadm.Client) ([]string, error) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	lags, err := adm.Lag(ctx, listed.Groups()...)
	if err != nil {
		return nil, fmt.Errorf("group lag: %w", err)
	}
	var busy []string
	for g, l := range lags {
		switch {
		case l.State == "Empty" || l.State == "Dead":
		case l.Error() != nil:
			busy = append(busy, g+": no lag info")
		case l.State != "Stable":
			busy = append(busy, g+": "+l.State)
		case l.Lag.Total() > 0:
			busy = append(busy, fmt.Sprintf("%s: lag %d", g, l.Lag.Total()))
		}
	}
	sort.Strings(busy)
	return busy, nil
}
