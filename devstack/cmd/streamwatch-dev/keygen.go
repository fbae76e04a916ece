package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/streamwatch/streamwatch/pkg/auth"
)

// keygen prints a new API key (the secret, for the client) and its key
// line (the SHA-256 digest, for AUTH_KEYS or AUTH_KEYS_FILE of the
// services), e.g. for docker compose or a Kubernetes Secret. The secret is
// printed once and stored nowhere.
func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "key name, shown in logs and errors (required, [A-Za-z0-9_.:-]{1,64})")
	scopes := fs.String("scopes", "", "comma-separated scopes: ingest, read, admin (required)")
	tenant := fs.String("tenant", "", "the only event source (and source/...) the key may write; empty: any")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *scopes == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	var ss []auth.Scope
	for s := range strings.SplitSeq(*scopes, ",") {
		ss = append(ss, auth.Scope(strings.TrimSpace(s)))
	}
	secret, err := auth.Generate()
	if err != nil {
		return err
	}
	line := auth.Line(*name, secret, *tenant, ss...)
	// ParseKeys checks the name, scopes and tenant as the services will.
	if _, err := auth.ParseKeys("keygen", strings.NewReader(line)); err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}
	fmt.Fprintf(stdout, "key:  %s\nline: %s\n", secret, line)
	return nil
}
