package adapters

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/streamwatch/streamwatch/pkg/messaging"
	"github.com/streamwatch/streamwatch/services/notifier/internal/domain/dispatch"
)

// DingTalkMessage is a DingTalk robot markdown message, the shape the seed
// platform sends: {"msgtype":"markdown","markdown":{"title","text"}}.
type DingTalkMessage struct {
	MsgType  string           `json:"msgtype"`
	Markdown DingTalkMarkdown `json:"markdown"`
}

// DingTalkMarkdown is the markdown part of a DingTalkMessage.
type DingTalkMarkdown struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

// DingTalk posts markdown notifications to a DingTalk custom robot.
type DingTalk struct {
	url, secret, title string
	client             *http.Client
	now                func() time.Time
}

// NewDingTalk returns a DingTalk integration. url and secret (the robot's
// signing secret; empty when the robot does not sign) are secrets. title
// defaults to "实时监控告警" as in the seed platform.
func NewDingTalk(url, secret, title string, now func() time.Time) *DingTalk {
	if title == "" {
		title = "实时监控告警"
	}
	if now == nil {
		now = time.Now
	}
	return &DingTalk{url: url, secret: secret, title: title, client: newHTTPClient(), now: now}
}

// Message renders n like the seed platform: a "## SEVERITY 告警" heading,
// then per alert **类型** (rule), **消息** (summary), **时间** (start) and,
// once resolved, **恢复时间**.
func (d *DingTalk) Message(n *dispatch.Notification) DingTalkMessage {
	var b strings.Builder
	for i, a := range n.Alerts {
		if i > 0 {
			b.WriteString("\n\n---\n\n")
		}
		sev := strings.ToUpper(a.Severity)
		if sev == "" {
			sev = "ALERT"
		}
		state := "告警"
		if a.State != "firing" {
			state = "恢复"
		}
		msg := a.Annotations["summary"]
		if msg == "" {
			msg = labelString(a.Labels)
		}
		fmt.Fprintf(&b, "## %s %s\n\n**类型**: %s\n\n**消息**: %s\n\n**时间**: %s",
			sev, state, a.Rule, msg, time.UnixMilli(a.StartsAt).UTC().Format(time.RFC3339))
		if a.EndsAt > 0 {
			fmt.Fprintf(&b, "\n\n**恢复时间**: %s", time.UnixMilli(a.EndsAt).UTC().Format(time.RFC3339))
		}
		if a.Ack != nil {
			fmt.Fprintf(&b, "\n\n**确认**: %s", a.Ack.By)
		}
	}
	return DingTalkMessage{MsgType: "markdown", Markdown: DingTalkMarkdown{Title: d.title, Text: b.String()}}
}

// Notify POSTs one notification. With a signing secret the URL gets
// timestamp and sign parameters (HMAC-SHA256 of "timestamp\nsecret",
// base64, as DingTalk documents). DingTalk answers 200 with errcode != 0
// on failure; that is an error too (permanent for a bad token or sign).
func (d *DingTalk) Notify(ctx context.Context, n dispatch.Notification) error {
	target := d.url
	if d.secret != "" {
		ts := strconv.FormatInt(d.now().UnixMilli(), 10)
		mac := hmac.New(sha256.New, []byte(d.secret))
		mac.Write([]byte(ts + "\n" + d.secret))
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + "timestamp=" + ts + "&sign=" + url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	body, err := postJSON(ctx, d.client, target, d.Message(&n))
	if err != nil {
		return err
	}
	var ans struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if json.Unmarshal(body, &ans) == nil && ans.ErrCode != 0 {
		err := fmt.Errorf("dingtalk errcode %d: %s", ans.ErrCode, ans.ErrMsg)
		if ans.ErrCode == 310000 || ans.ErrCode == 300001 { // sign / token rejected
			return messaging.Permanent(err)
		}
		return err
	}
	return nil
}
