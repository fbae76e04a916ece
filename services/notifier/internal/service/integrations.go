package service

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/streamwatch/streamwatch/services/notifier/internal/adapters"
	"github.com/streamwatch/streamwatch/services/notifier/internal/app"
	"github.com/streamwatch/streamwatch/services/notifier/internal/config"
)

// Built is one integration ready to deliver.
type Built struct {
	// Ref names it and says whether it wants resolved alerts.
	Ref app.IntegrationRef
	// Target sends notifications.
	Target app.Integration
	// Timeout bounds one attempt; MaxTries bounds attempts.
	Timeout  time.Duration
	MaxTries uint
}

// DefaultTimeout bounds one delivery attempt when an integration sets none.
const DefaultTimeout = 10 * time.Second

// BuildIntegrations creates every integration of the routing file's
// receivers, resolving secrets through lookup (environment variables) or
// *_file paths. It returns them and, per receiver, the references the
// dispatcher fans notifications out to. Errors name the receiver and field,
// never a secret's value.
func BuildIntegrations(r *config.Routing, cfg *config.Config, rdb redis.UniversalClient, lookup config.LookupEnv) ([]Built, map[string][]app.IntegrationRef, error) {
	var built []Built
	refs := map[string][]app.IntegrationRef{}
	var errs []error
	add := func(rc string, kind string, i int, d config.Delivery, dfltResolved bool, target app.Integration, err error) {
		name := fmt.Sprintf("%s/%s/%d", rc, kind, i)
		if err != nil {
			errs = append(errs, fmt.Errorf("receiver %s: %w", name, err))
			return
		}
		sr := dfltResolved
		if d.SendResolved != nil {
			sr = *d.SendResolved
		}
		b := Built{Ref: app.IntegrationRef{Name: name, SendResolved: sr}, Target: target, Timeout: d.Timeout, MaxTries: cfg.MaxTries}
		if b.Timeout <= 0 {
			b.Timeout = DefaultTimeout
		}
		if d.MaxTries > 0 {
			b.MaxTries = uint(d.MaxTries)
		}
		built = append(built, b)
		refs[rc] = append(refs[rc], b.Ref)
	}
	for _, rc := range r.Receivers {
		for i, c := range rc.WebhookConfigs {
			u, err := config.Secret("url", c.URL, c.URLFile, lookup)
			if err == nil {
				err = checkURL("url", u)
			}
			add(rc.Name, "webhook", i, c.Delivery, true, adapters.NewWebhook(u, cfg.ExternalURL, c.MaxAlerts), err)
		}
		for i, c := range rc.SlackConfigs {
			u, err := config.Secret("api_url", c.APIURL, c.APIURLFile, lookup)
			if err == nil {
				err = checkURL("api_url", u)
			}
			add(rc.Name, "slack", i, c.Delivery, true, adapters.NewSlack(u, c.Channel, c.Username), err)
		}
		for i, c := range rc.DingTalkConfigs {
			u, err := config.Secret("url", c.URL, c.URLFile, lookup)
			if err == nil {
				err = checkURL("url", u)
			}
			sec, err2 := config.Secret("secret", c.Secret, c.SecretFile, lookup)
			add(rc.Name, "dingtalk", i, c.Delivery, true, adapters.NewDingTalk(u, sec, c.Title, nil), errors.Join(err, err2))
		}
		for i, c := range rc.EmailConfigs {
			pw, err := config.Secret("auth_password", c.AuthPassword, c.AuthPasswordFile, lookup)
			var e *adapters.Email
			if err == nil {
				e, err = adapters.NewEmail(adapters.EmailSettings{
					To: c.To, From: c.From, Smarthost: c.Smarthost, Username: c.AuthUsername, Password: pw,
					TLS: c.TLS, CAFile: c.CAFile, ServerName: c.ServerName,
				})
			}
			add(rc.Name, "email", i, c.Delivery, true, e, err)
		}
		for i, c := range rc.RedisConfigs {
			var err error
			if c.Key == "" {
				err = errors.New("redis: key is required")
			}
			limit := c.Limit
			if limit <= 0 {
				limit = 100
			}
			add(rc.Name, "redis", i, c.Delivery, false, adapters.NewRecentList(rdb, c.Key, limit), err)
		}
	}
	return built, refs, errors.Join(errs...)
}

// checkURL checks an http(s) URL without ever printing it.
func checkURL(field, u string) error {
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("%s: not an http(s) URL", field)
	}
	return nil
}
