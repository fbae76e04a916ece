// Package auth authenticates Streamwatch's HTTP APIs with API keys and
// limits each key's request rate.
//
// A key is a random secret of 256 bits ("swk_" + 43 base64url characters)
// that clients send as "Authorization: Bearer <key>" or "X-API-Key: <key>".
// Services never store the secret: they hold its SHA-256 digest, a name, the
// scopes it grants (ingest, read, admin) and optionally a tenant (the event
// source the key may write) and its own rate limit.
//
// Why SHA-256 and not bcrypt or argon2: those are slow on purpose because
// passwords have little entropy and must resist offline guessing. An API key
// drawn from 256 random bits cannot be guessed however fast the hash is, so a
// single SHA-256 (as GitHub's and Stripe's token stores use) is as safe and
// costs about a microsecond per request instead of tens of milliseconds. It
// also lets the key ring find a key by the digest of what the client sent,
// with no per-key comparison loop: timing can reveal at most a prefix of
// the digest of the attacker's own input, never of a stored key.
package auth

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Scope is a permission a key grants.
type Scope string

// Scopes of Streamwatch's APIs.
const (
	// ScopeIngest lets a key send events, samples and log lines to the
	// collector.
	ScopeIngest Scope = "ingest"
	// ScopeRead lets a key read the query service's API (metrics, events,
	// alerts, notifications, pipeline) and open the dashboard.
	ScopeRead Scope = "read"
	// ScopeAdmin lets a key change rules and silences, acknowledge alerts
	// and start batch runs on the query service.
	ScopeAdmin Scope = "admin"
)

// Scopes lists every known scope.
var Scopes = []Scope{ScopeIngest, ScopeRead, ScopeAdmin}

// SecretPrefix starts every key Generate returns, so a leaked key is easy to
// recognise (secret scanners) and a digest pasted by mistake is refused.
const SecretPrefix = "swk_"

// Key is one API key as a service knows it: no secret, only its digest.
type Key struct {
	// Name identifies the key in logs, metrics and errors; it is not secret.
	Name string
	// Digest is the SHA-256 of the secret.
	Digest [sha256.Size]byte
	// Scopes are the permissions granted.
	Scopes []Scope
	// Tenant, when set, is the only event source the key may write (the
	// collector assigns it to events without a source and rejects others);
	// empty means any source.
	Tenant string
	// Rate is the key's own limit in requests per second; 0 means the
	// service default (AUTH_RATE_LIMIT). Negative means unlimited.
	Rate float64
	// Burst is the key's bucket size in requests; 0 means the default.
	Burst int
}

// Has reports whether the key grants scope.
func (k *Key) Has(scope Scope) bool { return slices.Contains(k.Scopes, scope) }

// Generate returns a new random secret: SecretPrefix followed by 32 random
// bytes in unpadded base64url (47 characters in all).
func Generate() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate API key: %w", err)
	}
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Digest returns the SHA-256 of secret.
func Digest(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }

// Line returns the key-file line of a key with the given name, secret and
// scopes (the format ParseKeys reads), e.g. "web ingest sha256:ab12…".
// tenant may be empty.
func Line(name, secret, tenant string, scopes ...Scope) string {
	d := Digest(secret)
	ss := make([]string, len(scopes))
	for i, s := range scopes {
		ss[i] = string(s)
	}
	l := name + " " + strings.Join(ss, ",") + " sha256:" + hex.EncodeToString(d[:])
	if tenant != "" {
		l += " tenant=" + tenant
	}
	return l
}

var nameRule = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

// ParseKeys reads key lines, one key per line (entries may also be separated
// by ';', for an environment variable):
//
//	NAME SCOPES sha256:HEX [tenant=SOURCE] [rate=REQ_PER_S] [burst=N]
//
// NAME matches [A-Za-z0-9_.:-]{1,64} and is unique; SCOPES is a
// comma-separated subset of ingest, read, admin; HEX is the 64-digit SHA-256
// of the secret (`printf %s "$KEY" | sha256sum`); rate=-1 exempts the key
// from rate limiting. Blank lines, lines starting with '#' and entries
// starting with '#' are skipped.
// origin names the input in errors ("AUTH_KEYS", a file name). Every error
// names the line and the problem, and never contains a digest.
func ParseKeys(origin string, r io.Reader) ([]Key, error) {
	var (
		keys []Key
		errs []error
	)
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "#") {
			continue // a comment line may contain ';'
		}
		for entry := range strings.SplitSeq(sc.Text(), ";") {
			entry = strings.TrimSpace(entry)
			if entry == "" || strings.HasPrefix(entry, "#") {
				continue
			}
			k, err := parseKey(entry)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s line %d: %w", origin, line, err))
				continue
			}
			if names[k.Name] {
				errs = append(errs, fmt.Errorf("%s line %d: key name %q used twice", origin, line, k.Name))
				continue
			}
			if other, dup := digests[k.Digest]; dup {
				errs = append(errs, fmt.Errorf("%s line %d: key %q has the same secret as key %q", origin, line, k.Name, other))
				continue
			}
			names[k.Name] = true
			digests[k.Digest] = k.Name
			keys = append(keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: read line %d: %w", origin, line+1, err))
	}
	return keys, errors.Join(errs...)
}

func parseKey(entry string) (Key, error) {
	f := strings.Fields(entry)
	if len(f) < 3 {
		return Key{}, errors.New(`want "NAME SCOPES sha256:HEX [tenant=T] [rate=R] [burst=N]"`)
	}
	k := Key{Name: f[0]}
	if !nameRule.MatchString(k.Name) {
		return Key{}, fmt.Errorf("key name must match %s", nameRule)
	}
	for s := range strings.SplitSeq(f[1], ",") {
		sc := Scope(s)
		if !slices.Contains(Scopes, sc) {
			return Key{}, fmt.Errorf("key %q: unknown scope %q (want ingest, read or admin)", k.Name, s)
		}
		if !k.Has(sc) {
			k.Scopes = append(k.Scopes, sc)
		}
	}
	hexDigest, ok := strings.CutPrefix(f[2], "sha256:")
	if !ok {
		if strings.HasPrefix(f[2], SecretPrefix) {
			return Key{}, fmt.Errorf("key %q: third field is a secret, not its digest: store sha256:<hex of the secret>, never the key itself", k.Name)
		}
		return Key{}, fmt.Errorf("key %q: third field must be sha256:<64 hex digits>", k.Name)
	}
	b, err := hex.DecodeString(hexDigest)
	if err != nil || len(b) != sha256.Size {
		return Key{}, fmt.Errorf("key %q: digest is not 64 hex digits", k.Name)
	}
	copy(k.Digest[:], b)
	for _, opt := range f[3:] {
		name, val, ok := strings.Cut(opt, "=")
		if !ok {
			return Key{}, fmt.Errorf("key %q: option %q is not name=value", k.Name, opt)
		}
		switch name {
		case "tenant":
			if !nameRule.MatchString(val) {
				return Key{}, fmt.Errorf("key %q: tenant must match %s", k.Name, nameRule)
			}
			k.Tenant = val
		case "rate":
			r, err := strconv.ParseFloat(val, 64)
			if err != nil || r != r || r > 1e9 {
				return Key{}, fmt.Errorf("key %q: rate %q is not a number of requests per second", k.Name, val)
			}
			k.Rate = r
		case "burst":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 1e9 {
				return Key{}, fmt.Errorf("key %q: burst %q is not a positive integer", k.Name, val)
			}
			k.Burst = n
		default:
			return Key{}, fmt.Errorf("key %q: unknown option %q (want tenant, rate or burst)", k.Name, name)
		}
	}
	return k, nil
}

// Keyring finds keys by secret. It is immutable and safe for concurrent use.
type Keyring struct {
	byDigest map[[sha256.Size]byte]*Key
}

// NewKeyring indexes keys by digest; ParseKeys already refused duplicates.
func NewKeyring(keys []Key) *Keyring {
	r := &Keyring{byDigest: make(map[[sha256.Size]byte]*Key, len(keys))}
	for i := range keys {
		k := keys[i]
		r.byDigest[k.Digest] = &k
	}
	return r
}

// Len returns the number of keys.
func (r *Keyring) Len() int { return len(r.byDigest) }

// Lookup returns the key whose secret is secret, or false.
func (r *Keyring) Lookup(secret string) (*Key, bool) {
	k, ok := r.byDigest[Digest(secret)]
	return k, ok
}
