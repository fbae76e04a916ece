package adapters

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// TLS modes of EmailSettings.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// EmailSettings configure an Email integration.
type EmailSettings struct {
	// To are the recipients; From is the sender address.
	To   []string
	From string
	// Smarthost is host:port of the SMTP server.
	Smarthost string
	// Username and Password enable SMTP AUTH (PLAIN, or LOGIN when the
	// server offers only that); Password is a secret.
	Username, Password string
	// TLS is TLSStartTLS (required; the default), TLSImplicit or TLSNone.
	TLS string
	// CAFile is a PEM bundle to trust instead of the system pool.
	CAFile string
	// ServerName overrides the name checked in the server certificate.
	ServerName string
}

// Email sends notifications as plain-text mail with wneessen/go-mail.
type Email struct {
	s       EmailSettings
	host    string
	port    int
	tlsConf *tls.Config
}

// NewEmail validates s and returns the integration.
func NewEmail(s EmailSettings) (*Email, error) {
	var errs []error
	if len(s.To) == 0 {
		errs = append(errs, errors.New("email: no recipients (to)"))
	}
	if s.From == "" {
		errs = append(errs, errors.New("email: no sender (from)"))
	}
	host, portS, err := net.SplitHostPort(s.Smarthost)
	port, perr := strconv.Atoi(portS)
	if err != nil || perr != nil {
		errs = append(errs, fmt.Errorf("email: smarthost %q: want host:port", s.Smarthost))
	}
	if s.TLS == "" {
		s.TLS = TLSStartTLS
	}
	if s.TLS != TLSStartTLS && s.TLS != TLSImplicit && s.TLS != TLSNone {
		errs = append(errs, fmt.Errorf("email: tls %q: want starttls, tls or none", s.TLS))
	}
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if s.ServerName != "" {
		tc.ServerName = s.ServerName
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		pool := x509.NewCertPool()
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			errs = append(errs, fmt.Errorf("email: ca_file %s: not a readable PEM bundle", s.CAFile))
		}
		tc.RootCAs = pool
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Email{s: s, host: host, port: port, tlsConf: tc}, nil
}

// Subject renders the subject: "[FIRING:2] alertname=..., ...".
func Subject(n *dispatch.Notification) string {
	return fmt.Sprintf("[%s:%d] %s", strings.ToUpper(n.Status), len(n.Alerts), labelString(n.GroupLabels))
}

// Body renders the plain-text body: one block per alert.
func Body(n *dispatch.Notification) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", Subject(n))
	for _, a := range n.Alerts {
		fmt.Fprintf(&b, "%s %s %s\n", strings.ToUpper(a.State), a.Rule, labelString(a.Labels))
		if s := a.Annotations["summary"]; s != "" {
			fmt.Fprintf(&b, "  %s\n", s)
		}
		fmt.Fprintf(&b, "  started %s\n", time.UnixMilli(a.StartsAt).UTC().Format(time.RFC3339))
		if a.EndsAt > 0 {
			fmt.Fprintf(&b, "  ended   %s\n", time.UnixMilli(a.EndsAt).UTC().Format(time.RFC3339))
		}
		if a.Ack != nil {
			fmt.Fprintf(&b, "  acknowledged by %s: %s\n", a.Ack.By, a.Ack.Comment)
		}
	}
	fmt.Fprintf(&b, "\nnotification %s\n", n.ID)
	return b.String()
}

// Notify sends one mail. The Message-ID is derived from the notification
// id, so a redelivered notification carries the same Message-ID. Address
// errors are permanent; SMTP 5xx answers are permanent.
func (e *Email) Notify(ctx context.Context, n dispatch.Notification) error {
	m := mail.NewMsg()
	if err := m.From(e.s.From); err != nil {
		return messaging.Permanent(fmt.Errorf("email from: %w", err))
	}
	if err := m.To(e.s.To...); err != nil {
		return messaging.Permanent(fmt.Errorf("email to: %w", err))
	}
	m.Subject(Subject(&n))
	m.SetMessageIDWithValue(strings.ReplaceAll(n.ID, ":", ".") + "@streamwatch")
	m.SetGenHeader("X-Streamwatch-Notification", n.ID)
	m.SetDate()
	m.SetBodyString(mail.TypeTextPlain, Body(&n))

	opts := []mail.Option{mail.WithPort(e.port), mail.WithTLSConfig(e.tlsConf), mail.WithoutNoop()}
	switch e.s.TLS {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if e.s.Username != "" {
		auth := mail.SMTPAuthPlain
		if e.s.TLS == TLSNone {
			auth = mail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(e.s.Username), mail.WithPassword(e.s.Password))
	}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, mail.WithTimeout(time.Until(dl)))
	}
	c, err := mail.NewClient(e.host, opts...)
	if err != nil {
		return messaging.Permanent(fmt.Errorf("email client: %w", err))
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		var se *mail.SendError
		if errors.As(err, &se) && !se.IsTemp() {
			return messaging.Permanent(fmt.Errorf("send mail: %w", err))
		}
		return fmt.Errorf("send mail: %w", err)
	}
	return nil
}
