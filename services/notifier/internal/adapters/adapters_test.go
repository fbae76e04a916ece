package adapters_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/streamwatch/streamwatch/pkg/alerts"
	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/pkg/silences"
	"github.com/streamwatch/streamwatch/pkg/testutil/redistest"
	"github.com/streamwatch/streamwatch/services/notifier/internal/adapters"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

func notification() dispatch.Notification {
	l1 := map[string]string{"alertname": "high_request_rate_client", "client_ip": "75.97.9.59", "severity": "warning"}
	l2 := map[string]string{"alertname": "high_request_rate_client", "client_ip": "10.0.0.1", "severity": "warning"}
	a1 := alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint("high_request_rate_client", l1), Rule: "high_request_rate_client",
		State: "firing", Severity: "warning", Labels: l1, Annotations: map[string]string{"summary": "client 75.97.9.59 made 108 requests"},
		StartsAt: time.Date(2015, 5, 18, 8, 5, 0, 0, time.UTC).UnixMilli()}
	a2 := alerts.Alert{V: 1, Fingerprint: alerts.Fingerprint("high_request_rate_client", l2), Rule: "high_request_rate_client",
		State: "resolved", Severity: "warning", Labels: l2, Annotations: map[string]string{"summary": "client 10.0.0.1 made 101 requests"},
		StartsAt: time.Date(2015, 5, 18, 8, 0, 0, 0, time.UTC).UnixMilli(), EndsAt: time.Date(2015, 5, 18, 8, 3, 0, 0, time.UTC).UnixMilli()}
	return dispatch.Notification{
		V: 1, ID: "00112233aabbccdd:3", GroupKey: `0:{alertname="high_request_rate_client"}`, Receiver: "team",
		Integration: "team/webhook/0", Status: "firing", GroupLabels: map[string]string{"alertname": "high_request_rate_client"},
		Alerts: []dispatch.NotifiedAlert{{Alert: a1, Ack: &silences.Ack{By: "alice", At: time.Date(2015, 5, 18, 8, 6, 0, 0, time.UTC).UnixMilli(), Comment: "on it"}}, {Alert: a2}},
	}
}

// sink is an HTTP endpoint on loopback recording request bodies; it
// answers status (200 when 0) and then body.
type sink struct {
	mu       sync.Mutex
	status   int
	answer   string
	bodies   [][]byte
	headers  []http.Header
	rawQuery []string
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies = append(s.bodies, b)
	s.headers = append(s.headers, r.Header.Clone())
	s.rawQuery = append(s.rawQuery, r.URL.RawQuery)
	if s.status != 0 {
		w.WriteHeader(s.status)
	}
	_, _ = io.WriteString(w, s.answer)
}

func serve(t *testing.T, s *sink) string {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL + "/hook?token=s3cr3t"
}

func TestWebhookPayloadIsAlertmanagerV4(t *testing.T) {
	t.Parallel()
	s := &sink{}
	url := serve(t, s)
	require.NoError(t, adapters.NewWebhook(url, "http://sw.example", 0).Notify(context.Background(), notification()))
	require.Len(t, s.bodies, 1)
	require.Equal(t, "application/json", s.headers[0].Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.Unmarshal(s.bodies[0], &m))
	require.Equal(t, "4", m["version"])
	require.Equal(t, `0:{alertname="high_request_rate_client"}`, m["groupKey"])
	require.EqualValues(t, 0, m["truncatedAlerts"])
	require.Equal(t, "firing", m["status"])
	require.Equal(t, "team", m["receiver"])
	require.Equal(t, map[string]any{"alertname": "high_request_rate_client"}, m["groupLabels"])
	require.Equal(t, map[string]any{"alertname": "high_request_rate_client", "severity": "warning"}, m["commonLabels"])
	require.Equal(t, map[string]any{}, m["commonAnnotations"])
	require.Equal(t, "http://sw.example", m["externalURL"])
	require.Equal(t, "00112233aabbccdd:3", m["notificationID"])
	as := m["alerts"].([]any)
	require.Len(t, as, 2)
	a0, a1 := as[0].(map[string]any), as[1].(map[string]any)
	require.Equal(t, "firing", a0["status"])
	require.Equal(t, "75.97.9.59", a0["labels"].(map[string]any)["client_ip"])
	require.Equal(t, "client 75.97.9.59 made 108 requests", a0["annotations"].(map[string]any)["summary"])
	require.Equal(t, "2015-05-18T08:05:00Z", a0["startsAt"])
	require.Equal(t, "0001-01-01T00:00:00Z", a0["endsAt"])
	require.Equal(t, "", a0["generatorURL"])
	require.Equal(t, notification().Alerts[0].Fingerprint, a0["fingerprint"])
	require.Equal(t, map[string]any{"by": "alice", "at": "2015-05-18T08:06:00Z", "comment": "on it"}, a0["acknowledgement"])
	require.NotContains(t, a1, "acknowledgement")
	require.Equal(t, "resolved", a1["status"])
	require.Equal(t, "2015-05-18T08:03:00Z", a1["endsAt"])

	// max_alerts truncates and counts.
	require.NoError(t, adapters.NewWebhook(url, "", 1).Notify(context.Background(), notification()))
	var tm adapters.WebhookMessage
	require.NoError(t, json.Unmarshal(s.bodies[1], &tm))
	require.Equal(t, 1, tm.TruncatedAlerts)
	require.Len(t, tm.Alerts, 1)
}

func TestWebhookErrorsAreClassifiedAndHideTheURL(t *testing.T) {
	t.Parallel()
	bad := &sink{status: http.StatusBadRequest}
	err := adapters.NewWebhook(serve(t, bad), "", 0).Notify(context.Background(), notification())
	require.ErrorContains(t, err, "400")
	require.True(t, messaging.IsPermanent(err), "4xx is permanent")
	busy := &sink{status: http.StatusServiceUnavailable}
	err = adapters.NewWebhook(serve(t, busy), "", 0).Notify(context.Background(), notification())
	require.False(t, messaging.IsPermanent(err), "5xx is retried")
	// An unreachable URL: the error must not carry the token.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	err = adapters.NewWebhook("http://"+addr+"/hook?token=s3cr3t", "", 0).Notify(context.Background(), notification())
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cr3t")
	require.NotContains(t, err.Error(), addr+"/hook")
}

func TestSlackPayload(t *testing.T) {
	t.Parallel()
	s := &sink{answer: "ok"}
	require.NoError(t, adapters.NewSlack(serve(t, s), "#ops", "streamwatch").Notify(context.Background(), notification()))
	var m adapters.SlackMessage
	require.NoError(t, json.Unmarshal(s.bodies[0], &m))
	title := `[FIRING:2] {alertname="high_request_rate_client"}`
	require.Equal(t, "#ops", m.Channel)
	require.Equal(t, "streamwatch", m.Username)
	require.Equal(t, title, m.Text)
	require.Len(t, m.Attachments, 1)
	at := m.Attachments[0]
	require.Equal(t, "danger", at.Color)
	require.Equal(t, title, at.Title)
	require.Equal(t, title, at.Fallback)
	require.Equal(t, "00112233aabbccdd:3", at.Footer)
	require.Equal(t, strings.Join([]string{
		`• *firing* high_request_rate_client {alertname="high_request_rate_client", client_ip="75.97.9.59", severity="warning"}: client 75.97.9.59 made 108 requests (acknowledged by alice)`,
		`• *resolved* high_request_rate_client {alertname="high_request_rate_client", client_ip="10.0.0.1", severity="warning"}: client 10.0.0.1 made 101 requests`,
	}, "\n"), at.Text)
}

func TestDingTalkMarkdownAndSigning(t *testing.T) {
	t.Parallel()
	s := &sink{answer: `{"errcode":0,"errmsg":"ok"}`}
	now := func() time.Time { return time.UnixMilli(1700000000000) }
	require.NoError(t, adapters.NewDingTalk(serve(t, s), "SECabc", "", now).Notify(context.Background(), notification()))
	var m adapters.DingTalkMessage
	require.NoError(t, json.Unmarshal(s.bodies[0], &m))
	require.Equal(t, "markdown", m.MsgType)
	require.Equal(t, "实时监控告警", m.Markdown.Title)
	require.Equal(t, "## WARNING 告警\n\n**类型**: high_request_rate_client\n\n**消息**: client 75.97.9.59 made 108 requests\n\n"+
		"**时间**: 2015-05-18T08:05:00Z\n\n**确认**: alice\n\n---\n\n"+
		"## WARNING 恢复\n\n**类型**: high_request_rate_client\n\n**消息**: client 10.0.0.1 made 101 requests\n\n"+
		"**时间**: 2015-05-18T08:00:00Z\n\n**恢复时间**: 2015-05-18T08:03:00Z", m.Markdown.Text)
	// HMAC-SHA256("1700000000000\nSECabc") with key SECabc, base64, escaped
	// (computed independently with Python's hmac module).
	require.Equal(t, "token=s3cr3t&timestamp=1700000000000&sign=jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM%3D", s.rawQuery[0])

	refused := &sink{answer: `{"errcode":310000,"errmsg":"sign not match"}`}
	err := adapters.NewDingTalk(serve(t, refused), "", "", now).Notify(context.Background(), notification())
	require.ErrorContains(t, err, "errcode 310000")
	require.True(t, messaging.IsPermanent(err))
}

func TestRecentListIsIdempotentAndCapped(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t)
	ctx := context.Background()
	r := adapters.NewRecentList(rdb, "alerts:recent", 3)
	n := notification()
	n.Alerts = n.Alerts[:1]
	for range 2 {
		require.NoError(t, r.Notify(ctx, n))
	}
	items, err := rdb.LRange(ctx, "alerts:recent", 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, items, 1)
	var a alerts.Alert
	require.NoError(t, json.Unmarshal([]byte(items[0]), &a))
	require.Equal(t, n.Alerts[0].Alert, a)
	for i := range 5 {
		m := notification()
		m.Alerts = m.Alerts[:1]
		m.Alerts[0].StartsAt += int64(i+1) * 60000
		require.NoError(t, r.Notify(ctx, m))
	}
	items, err = rdb.LRange(ctx, "alerts:recent", 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, items, 3)
	require.NoError(t, json.Unmarshal([]byte(items[0]), &a))
	require.Equal(t, n.Alerts[0].StartsAt+5*60000, a.StartsAt, "newest first")
}

// smtpServer is a real SMTP server on loopback (emersion/go-smtp) with
// STARTTLS and AUTH PLAIN, recording what it receives.
type smtpServer struct {
	mu    sync.Mutex
	auths []string
	mails []received
}

type received struct {
	from string
	to   []string
	data []byte
}

type smtpSession struct {
	srv *smtpServer
	cur received
}

func (s *smtpServer) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{srv: s}, nil }

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.srv.mu.Lock()
		s.srv.auths = append(s.srv.auths, user+":"+pass)
		s.srv.mu.Unlock()
		if user != "alerts" || pass != "hunter2" {
			return errors.New("bad credentials")
		}
		return nil
	}), nil
}
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.cur.data = b
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, s.cur)
	s.srv.mu.Unlock()
	return err
}
func (s *smtpSession) Reset()        { s.cur = received{} }
func (s *smtpSession) Logout() error { return nil }

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	require.NoError(t, err)
	return cert, certPEM
}

func startSMTP(t *testing.T) (*smtpServer, string, string) {
	t.Helper()
	cert, certPEM := selfSigned(t)
	be := &smtpServer{}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, certPEM, 0o600))
	return be, l.Addr().String(), ca
}

func TestEmailOverSTARTTLSWithAuth(t *testing.T) {
	t.Parallel()
	be, addr, ca := startSMTP(t)
	e, err := adapters.NewEmail(adapters.EmailSettings{
		To: []string{"oncall@example.com", "lead@example.com"}, From: "streamwatch@example.com", Smarthost: addr,
		Username: "alerts", Password: "hunter2", CAFile: ca,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.Notify(ctx, notification()))

	require.Equal(t, []string{"alerts:hunter2"}, be.auths)
	require.Len(t, be.mails, 1)
	got := be.mails[0]
	require.Equal(t, "streamwatch@example.com", got.from)
	require.Equal(t, []string{"oncall@example.com", "lead@example.com"}, got.to)
	msg, err := mail.ReadMessage(bytes.NewReader(got.data))
	require.NoError(t, err)
	require.Equal(t, "<streamwatch@example.com>", msg.Header.Get("From"))
	require.Equal(t, "<oncall@example.com>, <lead@example.com>", msg.Header.Get("To"))
	require.Equal(t, `[FIRING:2] {alertname="high_request_rate_client"}`, msg.Header.Get("Subject"))
	require.Equal(t, "<00112233aabbccdd.3@streamwatch>", msg.Header.Get("Message-Id"))
	require.Equal(t, "00112233aabbccdd:3", msg.Header.Get("X-Streamwatch-Notification"))
	require.Contains(t, msg.Header.Get("Content-Type"), "text/plain")
	require.Equal(t, "quoted-printable", msg.Header.Get("Content-Transfer-Encoding"))
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	require.NoError(t, err)
	text := strings.ReplaceAll(string(body), "\r\n", "\n")
	require.Contains(t, text, `FIRING high_request_rate_client {alertname="high_request_rate_client", client_ip="75.97.9.59", severity="warning"}`)
	require.Contains(t, text, "  client 75.97.9.59 made 108 requests\n  started 2015-05-18T08:05:00Z\n  acknowledged by alice: on it")
	require.Contains(t, text, "  ended   2015-05-18T08:03:00Z")
	require.Contains(t, text, "notification 00112233aabbccdd:3")
}

func TestEmailWrongPasswordIsPermanentAndSecretFree(t *testing.T) {
	t.Parallel()
	_, addr, ca := startSMTP(t)
	e, err := adapters.NewEmail(adapters.EmailSettings{
		To: []string{"oncall@example.com"}, From: "streamwatch@example.com", Smarthost: addr,
		Username: "alerts", Password: "wrong-pass", CAFile: ca,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = e.Notify(ctx, notification())
	require.Error(t, err)
	require.NotContains(t, err.Error(), "wrong-pass")

	// An untrusted certificate fails STARTTLS: mail is never sent in clear.
	e, err = adapters.NewEmail(adapters.EmailSettings{
		To: []string{"oncall@example.com"}, From: "streamwatch@example.com", Smarthost: addr,
		Username: "alerts", Password: "hunter2",
	})
	require.NoError(t, err)
	require.Error(t, e.Notify(ctx, notification()))
}

func TestEmailSettingsValidation(t *testing.T) {
	t.Parallel()
	_, err := adapters.NewEmail(adapters.EmailSettings{Smarthost: "nohost", TLS: "ssl3"})
	require.ErrorContains(t, err, "no recipients")
	require.ErrorContains(t, err, "no sender")
	require.ErrorContains(t, err, `smarthost "nohost"`)
	require.ErrorContains(t, err, `tls "ssl3"`)
}
