package join

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
)

// GeoIP maps IP addresses to ISO 3166-1 alpha-2 country codes from a table
// of CIDR ranges. Lookup is a binary search over the ranges sorted by their
// first address (O(log n), no allocation); IPv4 and IPv6 ranges are kept
// apart. Immutable after ParseGeoIP, so safe for concurrent use.
type GeoIP struct {
	v4 []span4
	v6 []span6
}

type span4 struct {
	first, last uint32
	country     string
}

type span6 struct {
	first, last netip.Addr
	country     string
}

// ParseGeoIP reads a CSV of "CIDR,country" lines (e.g. "203.0.113.0/24,NL"
// or "2001:db8::/32,DE"). Empty lines and lines starting with '#' are
// skipped, and so is a first line "cidr,country" (a header). Countries are
// two letters (upper-cased). Ranges must not overlap. Every problem is
// reported as "line N: reason" (errors.Join); name prefixes the messages.
func ParseGeoIP(name string, r io.Reader) (*GeoIP, error) {
	g := &GeoIP{}
	var errs []error
	sc := bufio.NewScanner(r)
	line := 0
	lines4, lines6 := map[uint32]int{}, map[netip.Addr]int{}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") || (line == 1 && strings.EqualFold(strings.ReplaceAll(text, " ", ""), "cidr,country")) {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
		}
		cidr, country, ok := strings.Cut(text, ",")
		if !ok {
			bad("%q is not CIDR,country", text)
			continue
		}
		pfx, err := netip.ParsePrefix(strings.TrimSpace(cidr))
		if err != nil {
			bad("%q is not a CIDR prefix", strings.TrimSpace(cidr))
			continue
		}
		country = strings.ToUpper(strings.TrimSpace(country))
		if len(country) != 2 || country[0] < 'A' || country[0] > 'Z' || country[1] < 'A' || country[1] > 'Z' {
			bad("country %q is not a two-letter code", country)
			continue
		}
		pfx = pfx.Masked()
		first, last := pfx.Addr(), lastAddr(pfx)
		if first.Is4() {
			s := span4{first: be32(first), last: be32(last), country: country}
			lines4[s.first] = line
			g.v4 = append(g.v4, s)
		} else {
			lines6[first] = line
			g.v6 = append(g.v6, span6{first: first, last: last, country: country})
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	slices.SortFunc(g.v4, func(a, b span4) int { return cmp.Compare(a.first, b.first) })
	slices.SortFunc(g.v6, func(a, b span6) int { return a.first.Compare(b.first) })
	for i := 1; i < len(g.v4); i++ {
		if g.v4[i].first <= g.v4[i-1].last {
			errs = append(errs, fmt.Errorf("%s:%d: range overlaps the range of line %d", name, lines4[g.v4[i].first], lines4[g.v4[i-1].first]))
		}
	}
	for i := 1; i < len(g.v6); i++ {
		if g.v6[i].first.Compare(g.v6[i-1].last) <= 0 {
			errs = append(errs, fmt.Errorf("%s:%d: range overlaps the range of line %d", name, lines6[g.v6[i].first], lines6[g.v6[i-1].first]))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ip ranges: %w", err)
	}
	return g, nil
}

// Len returns the number of ranges.
func (g *GeoIP) Len() int { return len(g.v4) + len(g.v6) }

// Country returns the country of ip (a textual IPv4 or IPv6 address; IPv4-
// mapped IPv6 addresses count as IPv4), or "" when no range holds it or ip
// is not an address.
func (g *GeoIP) Country(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	if a.Is4() {
		x := be32(a)
		// The first span starting after x; its predecessor is the candidate.
		i, _ := slices.BinarySearchFunc(g.v4, x, func(s span4, x uint32) int { return cmp.Compare(s.first, x) })
		if i < len(g.v4) && g.v4[i].first == x {
			return g.v4[i].country
		}
		if i > 0 && x <= g.v4[i-1].last {
			return g.v4[i-1].country
		}
		return ""
	}
	a = a.WithZone("")
	i, found := slices.BinarySearchFunc(g.v6, a, func(s span6, x netip.Addr) int { return s.first.Compare(x) })
	if found {
		return g.v6[i].country
	}
	if i > 0 && a.Compare(g.v6[i-1].last) <= 0 {
		return g.v6[i-1].country
	}
	return ""
}

func be32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// lastAddr returns the last address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	if p.Addr().Is4() {
		b := p.Addr().As4()
		host := 32 - p.Bits()
		x := be32(p.Addr()) | uint32(uint64(1)<<host-1)
		b[0], b[1], b[2], b[3] = byte(x>>24), byte(x>>16), byte(x>>8), byte(x)
		return netip.AddrFrom4(b)
	}
	b := p.Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom16(b)
}
