package stack

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Infrastructure faults and extra service instances, for fault-injection
// tests (devstack/faultstest). Every restart keeps the component's address
// and data directory, so the services reconnect to the same place and find
// their state, as they would after an outage in production.

// ErrInfraRunning means a Start* method was called on a component that runs.
var ErrInfraRunning = errors.New("already running")

// StopBroker closes the in-process broker: it stops serving, every client
// connection drops, and its state (topics, records, committed offsets,
// producer ids) is written to DataDir/kafka. Stopping a stopped broker does
// nothing. Errors: ErrClosed.
func (s *Stack) StopBroker() error {
	if s.isClosed() {
		return ErrClosed
	}
	s.infraMu.Lock()
	defer s.infraMu.Unlock()
	if s.broker != nil {
		s.broker.Close()
		s.broker = nil
		s.logger.Info("broker stopped")
	}
	return nil
}

// StartBroker starts the broker again on its address from the state in
// DataDir/kafka. The listening port may linger for a moment after
// StopBroker, so it retries for up to 10 s (less if ctx ends). Errors:
// ErrInfraRunning, ErrClosed, or the broker's start error.
func (s *Stack) StartBroker(ctx context.Context) error {
	if s.isClosed() {
		return ErrClosed
	}
	s.infraMu.Lock()
	defer s.infraMu.Unlock()
	if s.broker != nil {
		return fmt.Errorf("broker: %w", ErrInfraRunning)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		c, err := startBroker(s.logger, filepath.Join(s.dataDir, "kafka"), s.ports["broker"], s.opts.Partitions)
		if err == nil {
			s.broker = c
			s.logger.Info("broker started", "broker", s.Brokers()[0])
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("restart broker: %w (last error: %w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RestartBroker is StopBroker followed by StartBroker.
func (s *Stack) RestartBroker(ctx context.Context) error {
	if err := s.StopBroker(); err != nil {
		return err
	}
	return s.StartBroker(ctx)
}

// StopRedis stops redis-server gracefully (SIGTERM, which makes it flush its
// append-only file; SIGKILL after Options.StopTimeout or when ctx is done).
// Stopping a stopped Redis does nothing. Errors: ErrClosed.
func (s *Stack) StopRedis(ctx context.Context) error {
	return s.stopInfra(ctx, &s.redis)
}

// StartRedis starts redis-server again on its address with the data in
// DataDir/redis and returns once it answers PING. Errors: ErrInfraRunning,
// ErrClosed, or the start error with the tail of its log.
func (s *Stack) StartRedis(ctx context.Context) error {
	return s.startInfra1(ctx, &s.redis, func() (*process, error) {
		return startRedis(ctx, s.logger, s.redisBin, filepath.Join(s.dataDir, "redis"), s.LogPath("redis"), s.ports["redis"])
	})
}

// StopClickHouse stops clickhouse-server gracefully (SIGTERM; SIGKILL after
// Options.StopTimeout or when ctx is done). Stopping a stopped ClickHouse
// does nothing. Errors: ErrClosed.
func (s *Stack) StopClickHouse(ctx context.Context) error {
	return s.stopInfra(ctx, &s.clickHouse)
}

// StartClickHouse starts clickhouse-server again on its addresses with the
// data in DataDir/clickhouse and returns once it answers on the native
// port. Errors: ErrInfraRunning, ErrClosed, or the start error.
func (s *Stack) StartClickHouse(ctx context.Context) error {
	return s.startInfra1(ctx, &s.clickHouse, func() (*process, error) {
		return startClickHouse(ctx, s.logger, s.clickHouseBin, filepath.Join(s.dataDir, "clickhouse"),
			s.LogPath("clickhouse"), s.ports["clickhouse"], s.ports["clickhouse-http"], ClickHouseDatabase)
	})
}

func (s *Stack) stopInfra(ctx context.Context, slot **process) error {
	if s.isClosed() {
		return ErrClosed
	}
	s.infraMu.Lock()
	defer s.infraMu.Unlock()
	if p := *slot; p != nil {
		if !p.stop(ctx, s.opts.StopTimeout) {
			s.logger.Warn("killed after SIGTERM timeout", "process", p.name)
		}
		s.logger.Info("process stopped", "process", p.name)
		*slot = nil
	}
	return nil
}

func (s *Stack) startInfra1(ctx context.Context, slot **process, start func() (*process, error)) error {
	if s.isClosed() {
		return ErrClosed
	}
	s.infraMu.Lock()
	defer s.infraMu.Unlock()
	if p := *slot; p != nil && !p.exited() {
		return fmt.Errorf("%s: %w", p.name, ErrInfraRunning)
	}
	p, err := start()
	if err != nil {
		return err
	}
	*slot = p
	s.logger.Info("process started", "process", p.name)
	return nil
}

// AddInstance starts one more process of the named service (one of
// Options.Services) with the same environment, so it joins the same
// consumer groups, but with its own HTTP address and log file, and waits
// until it is ready. The returned instance name ("<name>-2", "<name>-3",
// …) works with StartService, StopService, KillService, ServiceRunning,
// ServiceURL and LogPath; Close stops it with the rest. Errors:
// ErrUnknownService, ErrClosed, or the start error (the instance stays
// registered, stopped).
func (s *Stack) AddInstance(ctx context.Context, name string) (string, error) {
	base, err := s.service(name)
	if err != nil {
		return "", err
	}
	ports, err := FreePorts(1)
	if err != nil {
		return "", err
	}
	addr := hostPort(ports[0])
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", ErrClosed
	}
	n := 2
	for ; s.services[name+"-"+strconv.Itoa(n)] != nil; n++ {
	}
	inst := name + "-" + strconv.Itoa(n)
	env := append([]string(nil), base.env...)
	for i, kv := range env {
		if strings.HasPrefix(kv, "HTTP_ADDR=") {
			env[i] = "HTTP_ADDR=" + addr
		}
	}
	svc := &service{name: inst, bin: base.bin, addr: addr, env: env, logPath: s.LogPath(inst)}
	s.services[inst] = svc
	s.mu.Unlock()
	return inst, svc.start(ctx, s)
}
