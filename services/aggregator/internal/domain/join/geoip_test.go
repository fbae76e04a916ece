package join_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/services/aggregator/internal/domain/join"
)

func loadSample(t testing.TB) *join.GeoIP {
	t.Helper()
	f, err := os.Open("testdata/ip_ranges_sample.csv")
	require.NoError(t, err)
	defer f.Close()
	g, err := join.ParseGeoIP("ip_ranges_sample.csv", f)
	require.NoError(t, err)
	return g
}

func TestGeoIPLookup(t *testing.T) {
	t.Parallel()
	g := loadSample(t)
	require.Equal(t, 9, g.Len())
	for ip, want := range map[string]string{
		"203.0.113.0": "NL", "203.0.113.255": "NL", "203.0.114.0": "", "203.0.112.255": "",
		"198.51.100.127": "DE", "198.51.100.128": "FR", "198.51.100.255": "FR",
		"10.255.255.255": "ZZ", "9.255.255.255": "", "11.0.0.0": "",
		"83.149.9.216": "RU", "66.249.73.135": "US", "66.249.96.0": "",
		"::ffff:192.0.2.7": "US", "0.0.0.0": "", "255.255.255.255": "",
		"2001:db8::1": "DE", "2001:db8:7fff:ffff::": "DE", "2001:db8:8000::": "FR", "2001:db9::": "", "::1": "",
		"not-an-ip": "", "": "",
	} {
		require.Equal(t, want, g.Country(ip), ip)
	}
}

// TestGeoIPMatchesLinearScan checks the binary search against a scan of
// every range for addresses around every range boundary.
func TestGeoIPMatchesLinearScan(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	type rng struct{ first, last uint32 }
	var ranges []rng
	countries := []string{"AA", "BB", "CC"}
	for i := 0; i < 300; i++ {
		first := uint32(i) * 4096
		bits := 20 + i%12
		size := uint32(1) << (32 - bits)
		ranges = append(ranges, rng{first, first + size - 1})
		b.WriteString(ip4(first) + "/" + strconv.Itoa(bits) + "," + countries[i%3] + "\n")
	}
	g, err := join.ParseGeoIP("gen.csv", strings.NewReader(b.String()))
	require.NoError(t, err)
	for i, r := range ranges {
		for _, x := range []uint32{r.first - 1, r.first, r.first + 1, r.last - 1, r.last, r.last + 1} {
			want := ""
			for j, s := range ranges {
				if x >= s.first && x <= s.last {
					want = countries[j%3]
				}
			}
			require.Equal(t, want, g.Country(ip4(x)), "range %d, address %s", i, ip4(x))
		}
	}
}

func TestGeoIPErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	_, err := join.ParseGeoIP("bad.csv", strings.NewReader("cidr,country\n10.0.0.0/8,DE\nnonsense\n10.1.0.0/16,FR\n1.2.3.4/33,US\n8.8.8.0/24,Germany\n"))
	require.Error(t, err)
	for _, want := range []string{
		`bad.csv:3: "nonsense" is not CIDR,country`,
		`bad.csv:4: range overlaps the range of line 2`,
		`bad.csv:5: "1.2.3.4/33" is not a CIDR prefix`,
		`bad.csv:6: country "GERMANY" is not a two-letter code`,
	} {
		require.ErrorContains(t, err, want)
	}
}

func ip4(x uint32) string {
	return strconv.Itoa(int(x>>24)) + "." + strconv.Itoa(int(x>>16&255)) + "." + strconv.Itoa(int(x>>8&255)) + "." + strconv.Itoa(int(x&255))
}
