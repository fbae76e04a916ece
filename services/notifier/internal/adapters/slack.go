package adapters

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// SlackMessage is the body of a Slack incoming-webhook POST.
type SlackMessage struct {
	Channel     string            `json:"channel,omitempty"`
	Username    string            `json:"username,omitempty"`
	Text        string            `json:"text"`
	Attachments []SlackAttachment `json:"attachments"`
}

// SlackAttachment is a coloured block of a SlackMessage.
type SlackAttachment struct {
	Color    string `json:"color"`
	Title    string `json:"title"`
	Text     string `json:"text"`
	Fallback string `json:"fallback"`
	Footer   string `json:"footer"`
}

// Slack posts notifications to a Slack incoming webhook.
type Slack struct {
	url, channel, username string
	client                 *http.Client
}

// NewSlack returns a Slack integration; url is a secret.
func NewSlack(url, channel, username string) *Slack {
	return &Slack{url: url, channel: channel, username: username, client: newHTTPClient()}
}

// Message renders n: text "[FIRING:2] <group labels>", one attachment
// coloured danger (firing) or good (resolved) listing the alerts.
func (s *Slack) Message(n *dispatch.Notification) SlackMessage {
	title := fmt.Sprintf("[%s:%d] %s", strings.ToUpper(n.Status), len(n.Alerts), labelString(n.GroupLabels))
	var lines []string
	for _, a := range n.Alerts {
		l := fmt.Sprintf("• *%s* %s %s", a.State, a.Rule, labelString(a.Labels))
		if s := a.Annotations["summary"]; s != "" {
			l += ": " + s
		}
		if a.Ack != nil {
			l += fmt.Sprintf(" (acknowledged by %s)", a.Ack.By)
		}
		lines = append(lines, l)
	}
	color := "danger"
	if n.Status != "firing" {
		color = "good"
	}
	return SlackMessage{
		Channel: s.channel, Username: s.username, Text: title,
		Attachments: []SlackAttachment{{Color: color, Title: title, Text: strings.Join(lines, "\n"), Fallback: title, Footer: n.ID}},
	}
}

// Notify POSTs one notification.
func (s *Slack) Notify(ctx context.Context, n dispatch.Notification) error {
	_, err := postJSON(ctx, s.client, s.url, s.Message(&n))
	return err
}

// labelString renders labels as {a="1", b="2"}, sorted.
func labelString(m map[string]string) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = fmt.Sprintf("%s=%q", k, m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
