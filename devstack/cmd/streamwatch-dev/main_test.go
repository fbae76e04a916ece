package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/streamwatch/streamwatch/pkg/auth"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		cmd          string
		args         []string
		wantErr      error
		wantServices []string
		wantEnv      map[string]string // notifier's
		wantLog      string
	}{
		{name: "defaults", cmd: "up", wantServices: []string{"collector", "aggregator", "detector", "notifier", "query"}},
		{name: "no services", cmd: "up", args: []string{"-services="}, wantServices: []string{}},
		{
			name:         "env and services",
			cmd:          "demo",
			args:         []string{"-services", "collector, query", "-env", "notifier:NOTIFIER_WEBHOOK_URL=http://x/y?a=b", "-log", "a.log"},
			wantServices: []string{"collector", "query"},
			wantEnv:      map[string]string{"NOTIFIER_WEBHOOK_URL": "http://x/y?a=b"},
			wantLog:      "a.log",
		},
		{name: "bad env", cmd: "up", args: []string{"-env", "NOPE"}, wantErr: errAny},
		{name: "bad partitions", cmd: "up", args: []string{"-partitions", "0"}, wantErr: errUsage},
		{name: "stray argument", cmd: "up", args: []string{"now"}, wantErr: errUsage},
		{name: "log is a demo flag", cmd: "up", args: []string{"-log", "x"}, wantErr: errAny},
		{name: "help", cmd: "up", args: []string{"-h"}, wantErr: flag.ErrHelp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseFlags(tt.cmd, tt.args, io.Discard, new(slog.LevelVar))
			switch {
			case tt.wantErr == errAny && err != nil:
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("parseFlags: %v", err)
			}
			if !slices.Equal(cfg.opts.Services, tt.wantServices) || cfg.opts.Services == nil {
				t.Errorf("services = %#v, want %#v", cfg.opts.Services, tt.wantServices)
			}
			for k, v := range tt.wantEnv {
				if got := cfg.opts.ServiceEnv["notifier"][k]; got != v {
					t.Errorf("notifier %s = %q, want %q", k, got, v)
				}
			}
			if cfg.logFile != tt.wantLog && tt.wantLog != "" {
				t.Errorf("log = %q, want %q", cfg.logFile, tt.wantLog)
			}
			if cfg.opts.Partitions != 6 || !cfg.opts.FixedPorts || cfg.opts.DataDir != "./.data" || cfg.opts.BinDir != "./bin" {
				t.Errorf("defaults not applied: %+v", cfg.opts)
			}
		})
	}
}

// errAny in a test case accepts any error.
var errAny = errors.New("any error")

func TestKeygenPrintsAKeyAndItsLine(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if err := keygen([]string{"-name", "web1", "-scopes", "ingest", "-tenant", "web1"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var key, line string
	for l := range strings.Lines(out.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "key:  "); ok {
			key = v
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "line: "); ok {
			line = v
		}
	}
	keys, err := auth.ParseKeys("out", strings.NewReader(line))
	if err != nil || len(keys) != 1 {
		t.Fatalf("line %q: %v", line, err)
	}
	k, ok := auth.NewKeyring(keys).Lookup(key)
	if !ok || k.Tenant != "web1" || !k.Has(auth.ScopeIngest) {
		t.Fatalf("key %q does not match line %q", key, line)
	}
	if err := keygen([]string{"-name", "x", "-scopes", "write"}, io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Fatalf("unknown scope: err = %v", err)
	}
}
