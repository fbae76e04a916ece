package auth

import (
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// CookieName is the cookie the dashboard login sets (see Guard.Login).
const CookieName = "streamwatch_key"

// maxIPBuckets bounds the per-IP buckets kept with Mode off; the map is
// cleared when it would grow past it.
const maxIPBuckets = 10000

// contextKey is where Require stores the authenticated key in echo.Context.
const contextKey = "streamwatch.auth.key"

// anonymous is the key of every request when Mode is off.
var anonymous = &Key{Name: "anonymous", Scopes: Scopes}

// Guard is the authentication and rate-limit middleware of one service.
// Safe for concurrent use.
type Guard struct {
	ring   *Keyring
	off    bool
	rate   float64
	burst  int
	logger *slog.Logger

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// NewGuard reads the keys of cfg (see Config.Keyring). It logs once, at
// start, the mode and the number of keys (never a key). A nil logger
// discards.
func NewGuard(cfg Config, logger *slog.Logger) (*Guard, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ring, err := cfg.Keyring()
	if err != nil {
		return nil, err
	}
	g := &Guard{ring: ring, off: cfg.Mode == ModeOff, rate: cfg.RateLimit, burst: cfg.RateBurst, logger: logger, buckets: map[string]*rate.Limiter{}}
	if g.off {
		logger.Warn("API authentication is off (AUTH_MODE=off): every client has every scope; use only for local development")
	} else {
		logger.Info("API keys loaded", "keys", ring.Len(), "rate_limit_per_key", cfg.RateLimit, "rate_burst", cfg.RateBurst)
	}
	return g, nil
}

// Require returns middleware that admits a request only with a key that
// grants scope, then charges the key's token bucket:
//
//   - 401 {"code":"unauthorized"} with WWW-Authenticate: Bearer when no key
//     was sent or the key is unknown (the message never repeats the key);
//   - 403 {"code":"forbidden"} naming the key and the missing scope;
//   - 429 {"code":"rate_limited"} with Retry-After (whole seconds, at least
//     1) when the key's bucket is empty.
//
// The key comes from "Authorization: Bearer <key>" or "X-API-Key: <key>";
// for GET and HEAD requests with cookie true also from the CookieName
// cookie (reads only: a cookie is sent by the browser on its own, so it
// must never authorize a change). The admitted key is available to handlers
// through FromContext.
func (g *Guard) Require(scope Scope, cookie bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			k, err := g.authenticate(c, cookie)
			if err != nil {
				return err
			}
			if !k.Has(scope) {
				return echo.NewHTTPError(http.StatusForbidden, "API key "+strconv.Quote(k.Name)+" lacks scope "+strconv.Quote(string(scope)))
			}
			if wait, ok := g.allow(k, c.RealIP()); !ok {
				secs := max(1, int(math.Ceil(wait.Seconds())))
				c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
				return echo.NewHTTPError(http.StatusTooManyRequests, "rate limit of API key "+strconv.Quote(k.Name)+" exceeded; retry after "+strconv.Itoa(secs)+" s")
			}
			c.Set(contextKey, k)
			return next(c)
		}
	}
}

// FromContext returns the key Require admitted, or nil outside Require.
func FromContext(c echo.Context) *Key {
	k, _ := c.Get(contextKey).(*Key)
	return k
}

// Login returns middleware for the dashboard's entry page: a GET whose URL
// has a key parameter with a key that grants scope sets that key as an
// HttpOnly, SameSite=Strict CookieName cookie (path /, session lifetime) and
// answers 303 to the same URL without the parameter, so the key leaves the
// address bar and the history. An unknown key or one without the scope
// gets 401/403 as in Require. Other requests pass through.
func (g *Guard) Login(scope Scope) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			q := req.URL.Query()
			secret := q.Get("key")
			if req.Method != http.MethodGet || secret == "" {
				return next(c)
			}
			k, ok := g.lookup(secret)
			if !ok {
				return unauthorized(c, "invalid API key in the key parameter")
			}
			if !k.Has(scope) {
				return echo.NewHTTPError(http.StatusForbidden, "API key "+strconv.Quote(k.Name)+" lacks scope "+strconv.Quote(string(scope)))
			}
			c.SetCookie(&http.Cookie{
				Name: CookieName, Value: secret, Path: "/", HttpOnly: true,
				SameSite: http.SameSiteStrictMode, Secure: req.TLS != nil,
			})
			q.Del("key")
			u := url.URL{Path: req.URL.Path, RawQuery: q.Encode()}
			c.Response().Header().Set("Cache-Control", "no-store")
			return c.Redirect(http.StatusSeeOther, u.String())
		}
	}
}

// authenticate finds the request's key; with Mode off every request is
// anonymous.
func (g *Guard) authenticate(c echo.Context, cookie bool) (*Key, error) {
	if g.off {
		return anonymous, nil
	}
	req := c.Request()
	secret := ""
	if h := req.Header.Get(echo.HeaderAuthorization); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return nil, unauthorized(c, "Authorization header must be \"Bearer <API key>\"")
		}
		secret = strings.TrimSpace(token)
	} else if h := req.Header.Get("X-API-Key"); h != "" {
		secret = strings.TrimSpace(h)
	} else if cookie && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
		if ck, err := req.Cookie(CookieName); err == nil {
			secret = ck.Value
		}
	}
	if secret == "" {
		return nil, unauthorized(c, "missing API key: send \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\"")
	}
	k, ok := g.lookup(secret)
	if !ok {
		return nil, unauthorized(c, "invalid API key")
	}
	return k, nil
}

func (g *Guard) lookup(secret string) (*Key, bool) {
	if g.off {
		return anonymous, true
	}
	return g.ring.Lookup(secret)
}

func unauthorized(c echo.Context, msg string) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="streamwatch"`)
	return echo.NewHTTPError(http.StatusUnauthorized, msg)
}

// allow takes a token from the bucket of k (of ip when authentication is
// off). When the bucket is empty it returns false and how long until a
// token is available.
func (g *Guard) allow(k *Key, ip string) (time.Duration, bool) {
	r, burst := g.rate, g.burst
	if k.Rate != 0 {
		r = k.Rate
	}
	if k.Burst != 0 {
		burst = k.Burst
	}
	if r <= 0 {
		return 0, true
	}
	id := "key:" + k.Name
	if g.off {
		id = "ip:" + ip
	}
	g.mu.Lock()
	lim, ok := g.buckets[id]
	if !ok {
		if len(g.buckets) >= maxIPBuckets {
			clear(g.buckets)
		}
		lim = rate.NewLimiter(rate.Limit(r), burst)
		g.buckets[id] = lim
	}
	g.mu.Unlock()
	now := time.Now()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}
