// Package profiles defines the entity profile record carried on the
// log-compacted profiles topic: the attributes of a user, a product or a
// service that the aggregator joins onto events before windowing (a
// KTable-style lookup join, see docs/join.md).
//
// A record's Kafka key is "<type>/<id>" (Key), so every version of one
// profile lands in one partition in order and log compaction keeps the
// latest. A record with a null value (a tombstone) deletes the profile.
//
// Schema versions: v1 is the current version. A consumer accepts every
// version up to SchemaVersion; a newer one is a permanent error.
package profiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// SchemaVersion is the version of Profile written by this build.
const SchemaVersion = 1

// Schema is the value of the messaging.MetaSchema header of profile records.
const Schema = "profiles.v1"

// Type is the kind of entity a profile describes.
type Type string

// Entity types. Events join on user_id (behaviour events), product_id
// (behaviour events naming a product) and service (service requests).
const (
	TypeUser    Type = "user"
	TypeProduct Type = "product"
	TypeService Type = "service"
)

// Types lists every profile type, for error messages.
var Types = []Type{TypeUser, TypeProduct, TypeService}

// Valid reports whether t is a known profile type.
func (t Type) Valid() bool { return t == TypeUser || t == TypeProduct || t == TypeService }

// Limits on profile fields.
const (
	// MaxIDLen is the longest id, in bytes (as events.MaxIDLen).
	MaxIDLen = 128
	// MaxValueLen is the longest attribute value, in bytes.
	MaxValueLen = 256
	// MaxAttributes is the most entries of the generic attributes map.
	MaxAttributes = 32
)

// owner maps each typed attribute to the one profile type that has it.
var owner = map[string]Type{
	"segment": TypeUser, "plan": TypeUser, "country": TypeUser, "signup_date": TypeUser,
	"category": TypeProduct, "team": TypeService, "tier": TypeService,
}

// attributeKeyRe is the form of a generic attribute key.
var attributeKeyRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Profile is one version of an entity's attributes, as it travels on the
// profiles topic (schema v1). Only the fields of its Type may be set: user
// profiles carry Segment, Plan, Country and SignupDate; products Category
// and Price; services Team and Tier. Attributes are free-form extras for
// every type (keys [a-z][a-z0-9_]{0,63}, at most MaxAttributes).
type Profile struct {
	// V is the schema version the record was written with (1).
	V int `json:"v"`
	// Type is the entity type.
	Type Type `json:"type"`
	// ID is the entity id: a user_id, product_id or service name of events.
	ID string `json:"id"`
	// UpdatedAt is when the collector accepted this version, ms since the
	// epoch (informational: the join is by processing order, not by time).
	UpdatedAt int64 `json:"updated_at"`

	// User attributes.
	Segment string `json:"segment,omitempty"`
	Plan    string `json:"plan,omitempty"`
	// Country is an ISO 3166-1 alpha-2 code in upper case ("DE").
	Country string `json:"country,omitempty"`
	// SignupDate is a calendar date, YYYY-MM-DD.
	SignupDate string `json:"signup_date,omitempty"`

	// Product attributes.
	Category string `json:"category,omitempty"`
	// Price is the product's list price, >= 0, in the shop's currency.
	Price float64 `json:"price,omitempty"`

	// Service attributes.
	Team string `json:"team,omitempty"`
	Tier string `json:"tier,omitempty"`

	// Attributes are free-form extras.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Key returns the Kafka record key of an entity: "<type>/<id>".
func Key(t Type, id string) string { return string(t) + "/" + id }

// Key returns the profile's record key (see the package function Key).
func (p *Profile) Key() string { return Key(p.Type, p.ID) }

// ParseKey splits a record key "<type>/<id>" at its first '/'. The error
// names the problem (no '/', an unknown type, an empty id).
func ParseKey(key string) (Type, string, error) {
	t, id, ok := strings.Cut(key, "/")
	if !ok {
		return "", "", fmt.Errorf("%w: key %q is not <type>/<id>", ErrInvalid, key)
	}
	if !Type(t).Valid() {
		return "", "", fmt.Errorf("%w: key %q: %s", ErrInvalid, key, typeReason(Type(t)))
	}
	if id == "" {
		return "", "", fmt.Errorf("%w: key %q has an empty id", ErrInvalid, key)
	}
	return Type(t), id, nil
}

// ErrInvalid is wrapped by every validation and decoding error.
var ErrInvalid = errors.New("invalid profile")

// FieldError names the field that failed validation and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Field, e.Reason) }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func typeReason(t Type) string {
	names := make([]string, len(Types))
	for i, x := range Types {
		names[i] = string(x)
	}
	if t == "" {
		return "type missing (one of " + strings.Join(names, ", ") + ")"
	}
	return fmt.Sprintf("unknown type %q (one of %s)", t, strings.Join(names, ", "))
}

// Validate checks the profile against schema v1: a known type, an id, the
// attribute fields of its type only, value lengths and forms (country code,
// date, price, attribute keys). It returns every problem joined with
// errors.Join; each is a *FieldError wrapping ErrInvalid. It does not change
// the profile.
func (p *Profile) Validate() error {
	var errs []error
	add := func(field, reason string) { errs = append(errs, &FieldError{Field: field, Reason: reason}) }
	if p.V < 1 || p.V > SchemaVersion {
		add("v", fmt.Sprintf("unsupported schema version %d (this build reads 1..%d)", p.V, SchemaVersion))
	}
	if !p.Type.Valid() {
		add("type", typeReason(p.Type))
	}
	switch {
	case p.ID == "":
		add("id", "missing")
	case len(p.ID) > MaxIDLen:
		add("id", fmt.Sprintf("longer than %d bytes", MaxIDLen))
	case !printable(p.ID):
		add("id", "not printable UTF-8")
	}
	for _, f := range [...]struct{ name, v string }{
		{"segment", p.Segment}, {"plan", p.Plan}, {"country", p.Country}, {"signup_date", p.SignupDate},
		{"category", p.Category}, {"team", p.Team}, {"tier", p.Tier},
	} {
		if f.v == "" {
			continue
		}
		if p.Type.Valid() && owner[f.name] != p.Type {
			add(f.name, fmt.Sprintf("is a %s attribute, not one of a %s", owner[f.name], p.Type))
			continue
		}
		if len(f.v) > MaxValueLen {
			add(f.name, fmt.Sprintf("longer than %d bytes", MaxValueLen))
		} else if !printable(f.v) {
			add(f.name, "not printable UTF-8")
		}
	}
	if p.Country != "" && !isCountryCode(p.Country) {
		add("country", fmt.Sprintf("%q is not an ISO 3166-1 alpha-2 code (two upper-case letters)", p.Country))
	}
	if p.SignupDate != "" {
		if _, err := time.Parse(time.DateOnly, p.SignupDate); err != nil {
			add("signup_date", fmt.Sprintf("%q is not a date YYYY-MM-DD", p.SignupDate))
		}
	}
	if p.Price != 0 {
		switch {
		case p.Type.Valid() && p.Type != TypeProduct:
			add("price", fmt.Sprintf("is a product attribute, not one of a %s", p.Type))
		case math.IsNaN(p.Price) || math.IsInf(p.Price, 0):
			add("price", "not a finite number")
		case p.Price < 0:
			add("price", "negative")
		}
	}
	if len(p.Attributes) > MaxAttributes {
		add("attributes", fmt.Sprintf("more than %d entries", MaxAttributes))
	}
	for k, v := range p.Attributes {
		switch {
		case !attributeKeyRe.MatchString(k):
			add("attributes."+k, "key must match "+attributeKeyRe.String())
		case len(v) > MaxValueLen:
			add("attributes."+k, fmt.Sprintf("value longer than %d bytes", MaxValueLen))
		case !printable(v):
			add("attributes."+k, "value is not printable UTF-8")
		}
	}
	return errors.Join(errs...)
}

func isCountryCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Input is a profile as a client sends it: the attribute fields of Profile,
// plus type and id for the bulk endpoint (the PUT endpoint takes them from
// the path). v and updated_at belong to the collector and are refused as
// unknown fields.
type Input struct {
	Type       Type              `json:"type"`
	ID         string            `json:"id"`
	Segment    string            `json:"segment"`
	Plan       string            `json:"plan"`
	Country    string            `json:"country"`
	SignupDate string            `json:"signup_date"`
	Category   string            `json:"category"`
	Price      float64           `json:"price"`
	Team       string            `json:"team"`
	Tier       string            `json:"tier"`
	Attributes map[string]string `json:"attributes"`
}

// ParseInput decodes one client profile (a JSON object; unknown fields are
// errors). When t is non-empty the profile's type and id come from the
// request path (t, id) and the body may repeat them only with the same
// values. It fills in the schema version and UpdatedAt (receive), and
// validates. Errors wrap ErrInvalid and name the field.
func ParseInput(data []byte, t Type, id string, receive time.Time) (Profile, error) {
	var in Input
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Profile{}, describeJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Profile{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	if t != "" {
		if in.Type != "" && in.Type != t {
			return Profile{}, &FieldError{Field: "type", Reason: fmt.Sprintf("%q differs from the path's %q", in.Type, t)}
		}
		if in.ID != "" && in.ID != id {
			return Profile{}, &FieldError{Field: "id", Reason: fmt.Sprintf("%q differs from the path's %q", in.ID, id)}
		}
		in.Type, in.ID = t, id
	}
	p := Profile{
		V: SchemaVersion, Type: in.Type, ID: in.ID, UpdatedAt: receive.UnixMilli(),
		Segment: in.Segment, Plan: in.Plan, Country: in.Country, SignupDate: in.SignupDate,
		Category: in.Category, Price: in.Price, Team: in.Team, Tier: in.Tier, Attributes: in.Attributes,
	}
	if isCountryCode(strings.ToUpper(p.Country)) {
		p.Country = strings.ToUpper(p.Country) // "de" is accepted as "DE"
	}
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// describeJSONError turns encoding/json errors into messages that name the
// field, wrapped in ErrInvalid.
func describeJSONError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return fmt.Errorf("%w: expected a JSON object, got %s", ErrInvalid, typeErr.Value)
		}
		return &FieldError{Field: typeErr.Field, Reason: fmt.Sprintf("expected %s, got %s", typeErr.Type.String(), typeErr.Value)}
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%w: malformed JSON at byte %d: %s", ErrInvalid, syntaxErr.Offset, syntaxErr.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated or empty JSON", ErrInvalid)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &FieldError{Field: strings.Trim(f, `"`), Reason: "unknown field (profile schema v1)"}
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(msg, "json: "))
}

// Encode returns the record value of p (JSON). p should be valid.
func Encode(p *Profile) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode profile %s: %w", p.Key(), err)
	}
	return b, nil
}

// Decode parses a record value written by Encode and validates it. An empty
// value is a tombstone and has no profile: callers check for it first. The
// error wraps ErrInvalid (malformed JSON, an unsupported version, invalid
// fields).
func Decode(b []byte) (Profile, error) {
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return Profile{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	return p, nil
}
