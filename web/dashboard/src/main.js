// Streamwatch dashboard: reads the query service's REST API (series, live,
// alerts) and follows /api/v1/stream (Server-Sent Events) in live mode.
// Every number shown is also written to a data-value attribute, so tests can
// compare the page with the API.
import * as echarts from "echarts/core";
import { BarChart, LineChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([LineChart, BarChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

const MIN = 60_000;
const state = { range: "latest", live: true, from: 0, to: 0, stepMs: MIN };
const charts = {};
const $ = (id) => document.getElementById(id);

// --- API -------------------------------------------------------------------

// api returns the decoded JSON of a GET, or null when the endpoint is
// missing or failing: a panel then shows its empty state, never an error.
async function api(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    for (const x of [].concat(v)) q.append(k, String(x));
  }
  try {
    const res = await fetch(path + (q.size ? "?" + q : ""), { headers: { Accept: "application/json" } });
    if (!res.ok) return null;
    return await res.json();
  } catch {
    return null;
  }
}

function stepFor(minutes) {
  if (minutes <= 360) return { step: "1m", ms: MIN };
  if (minutes <= 2880) return { step: "5m", ms: 5 * MIN };
  return { step: "1h", ms: 60 * MIN };
}

// series returns {labelValue: Map(t -> value)} for a metric over the range.
async function series(metric, groupBy) {
  const { step } = stepFor((state.to - state.from) / MIN);
  const body = await api("/api/v1/series", {
    metric, from: state.from, to: state.to, step, ...(groupBy ? { group_by: groupBy } : {}),
  });
  const out = {};
  for (const s of body?.series || []) {
    const key = groupBy ? (s.labels || {})[groupBy] ?? "" : "";
    const m = (out[key] ||= new Map());
    for (const p of s.points || []) m.set(p.t, (m.get(p.t) || 0) + p.value);
  }
  return out;
}

const total = (m) => [...(m?.values() || [])].reduce((a, b) => a + b, 0);

// --- range -----------------------------------------------------------------

async function resolveRange() {
  if (state.range === "latest") {
    // The 24 h before the newest window any metric reports (replayed
    // historical logs have no data in "the last 15 minutes").
    const live = await api("/api/v1/live", { metric: ["requests", "events_by_type"] });
    const ends = (live?.metrics || []).map((m) => m.window_end).filter(Boolean);
    state.to = ends.length ? Math.max(...ends) : Date.now();
    state.to = Math.ceil(state.to / (60 * MIN)) * 60 * MIN;
    state.from = state.to - 24 * 60 * MIN;
  } else {
    const minutes = Number(state.range);
    state.to = Math.ceil(Date.now() / MIN) * MIN;
    state.from = state.to - minutes * MIN;
  }
  state.stepMs = stepFor((state.to - state.from) / MIN).ms;
  const label = $("range-label");
  label.textContent = `${fmtTime(state.from)} – ${fmtTime(state.to)} UTC`;
  label.dataset.from = String(state.from);
  label.dataset.to = String(state.to);
}

const fmtTime = (ms) => new Date(ms).toISOString().slice(0, 16).replace("T", " ");
const fmtNum = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");

function setValue(id, value, text) {
  const el = $(id);
  el.dataset.value = String(value);
  el.textContent = text ?? fmtNum(value);
}

// --- charts ----------------------------------------------------------------

function chart(id) {
  if (!charts[id]) {
    charts[id] = echarts.init($(id), document.documentElement.dataset.theme === "dark" ? "dark" : null, { renderer: "canvas" });
  }
  return charts[id];
}

function empty(id, text) {
  charts[id]?.dispose();
  delete charts[id];
  $(id).innerHTML = `<div class="empty">${text}</div>`;
}

function lineChart(id, named, { stack = false, bar = false, unit = "" } = {}) {
  const names = Object.keys(named).filter((k) => named[k].size);
  if (!names.length) return empty(id, "no data in this range");
  if (!charts[id]) $(id).innerHTML = "";
  const times = [...new Set(names.flatMap((n) => [...named[n].keys()]))].sort((a, b) => a - b);
  chart(id).setOption({
    backgroundColor: "transparent",
    tooltip: { trigger: "axis", valueFormatter: (v) => `${Number(v).toFixed(2)}${unit}` },
    legend: { top: 0, type: "scroll" },
    grid: { left: 50, right: 16, top: 30, bottom: 24 },
    xAxis: { type: "time" },
    yAxis: { type: "value" },
    series: names.map((n) => ({
      name: n || "all", type: bar ? "bar" : "line", stack: stack ? "total" : undefined, showSymbol: false,
      data: times.filter((t) => named[n].has(t)).map((t) => [t, named[n].get(t)]),
    })),
  }, true);
}

// --- panels ----------------------------------------------------------------

async function refresh() {
  await resolveRange();
  const perSec = 1000 / state.stepMs;
  const [req, byType, byClass, p95, p99, clients, users, pages] = await Promise.all([
    series("requests"), series("events_by_type", "type"), series("requests_by_status_class", "status_class"),
    series("latency_p95_by_service", "service"), series("latency_p99_by_service", "service"),
    series("requests_by_client", "client_ip"), series("events_by_user", "user_id"), series("events_by_page", "page"),
  ]);

  const requests = req[""] || new Map();
  const eventsAll = new Map();
  for (const m of Object.values(byType)) for (const [t, v] of m) eventsAll.set(t, (eventsAll.get(t) || 0) + v);
  setValue("kpi-requests", total(requests));
  setValue("kpi-events", total(eventsAll));
  const scale = (m) => new Map([...m].map(([t, v]) => [t, v * perSec]));
  lineChart("chart-throughput", { "requests/s": scale(requests), "events/s": scale(eventsAll) });

  const errs = byClass["5xx"] || new Map();
  const rate = new Map([...requests].map(([t, v]) => [t, v ? (errs.get(t) || 0) / v : 0]));
  const allReq = total(requests);
  setValue("kpi-error-rate", allReq ? total(errs) / allReq : 0, allReq ? `${((100 * total(errs)) / allReq).toFixed(2)} %` : "–");
  lineChart("chart-errors", { "5xx rate": rate });
  lineChart("chart-status", byClass, { stack: true, bar: true });

  const latency = {};
  for (const [svc, m] of Object.entries(p95)) latency[`${svc} p95`] = m;
  for (const [svc, m] of Object.entries(p99)) latency[`${svc} p99`] = m;
  lineChart("chart-latency", latency, { unit: " ms" });

  topList("top-clients", clients);
  topList("top-users", users);
  topList("top-pages", pages);
  await Promise.all([alertsPanels(), notificationsPanel(), pipelinePanel()]);
  $("status").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC · step ${stepFor((state.to - state.from) / MIN).step}`;
}

function topList(id, byKey, n = 10) {
  const rows = Object.entries(byKey).map(([k, m]) => [k, total(m)]).filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n);
  const el = $(id);
  el.replaceChildren();
  if (!rows.length) {
    el.innerHTML = `<div class="empty">no data in this range</div>`;
    return;
  }
  for (const [k, v] of rows) {
    const li = document.createElement("li");
    li.dataset.key = k;
    li.dataset.value = String(v);
    li.append(span(k), span(fmtNum(v)));
    el.append(li);
  }
}

function span(text, cls) {
  const s = document.createElement("span");
  s.textContent = text;
  if (cls) s.className = cls;
  return s;
}

function alertRows(id, list, emptyText) {
  const el = $(id);
  el.replaceChildren();
  if (!list.length) {
    el.innerHTML = `<div class="empty">${emptyText}</div>`;
    return;
  }
  for (const a of list.slice(0, 50)) {
    const li = document.createElement("li");
    li.dataset.fingerprint = a.fingerprint || "";
    const sev = a.severity || a.labels?.severity || "info";
    const who = Object.entries(a.labels || {}).filter(([k]) => k !== "alertname" && k !== "severity").map(([k, v]) => `${k}=${v}`).join(" ");
    const started = a.starts_at ? fmtTime(a.starts_at) : "";
    li.append(span(sev, `sev ${sev}`), span(`${a.rule || a.labels?.alertname || "alert"} ${who}`), span(started, "muted"));
    el.append(li);
  }
}

async function alertsPanels() {
  const [firing, recent] = await Promise.all([api("/api/v1/alerts", { state: "firing" }), api("/api/v1/alerts/recent")]);
  const list = (x) => (Array.isArray(x) ? x : x?.alerts || []);
  const active = list(firing).filter((a) => (a.state || "firing") === "firing");
  setValue("kpi-alerts", active.length);
  alertRows("alerts", active, "no active alerts");
  alertRows("recent", list(recent), "no alerts yet");
}

function emptyState(el, text) {
  el.replaceChildren();
  const d = document.createElement("div");
  d.className = "empty";
  d.textContent = text;
  el.append(d);
}

// alertNames returns the alertname values in a notification outcome: its
// own list when it has one, else those in its group key ({alertname="x"}).
function alertNames(p) {
  if (Array.isArray(p.alertnames)) return p.alertnames.join(", ");
  const names = [...String(p.group_key || "").matchAll(/alertname="((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]);
  return names.join(", ");
}

const outcomeClass = { sent: "ok", failed: "critical", retried: "warning" };

async function notificationsPanel() {
  const body = await api("/api/v1/notifications", { limit: 20 });
  const el = $("notifications");
  if (!body) return emptyState(el, "not available");
  const list = body.notifications || [];
  if (!list.length) return emptyState(el, "no notifications yet");
  el.replaceChildren();
  for (const n of list) {
    const p = n.payload || {};
    const kind = String(p.kind || "unknown");
    const li = document.createElement("li");
    li.dataset.id = n.id || "";
    li.dataset.kind = kind;
    const at = Number(p.at) || n.received_at;
    li.append(span(kind, `sev ${outcomeClass[kind] || "muted-sev"}`), span(`${p.integration || p.receiver || "–"} ${alertNames(p)}`),
      span(at ? fmtTime(at) : "", "muted"));
    el.append(li);
  }
}

function row(cells, attrs, bad) {
  const tr = document.createElement("tr");
  Object.assign(tr.dataset, attrs);
  if (bad) tr.className = "bad";
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.append(td);
  }
  return tr;
}

function table(title, rows, emptyText) {
  const t = document.createElement("table");
  const head = document.createElement("tr");
  for (const h of title) {
    const th = document.createElement("th");
    th.textContent = h;
    head.append(th);
  }
  t.append(head, ...rows);
  if (!rows.length) t.append(row([emptyText, ""], {}));
  return t;
}

async function pipelinePanel() {
  const body = await api("/api/v1/pipeline");
  const el = $("pipeline");
  if (!body) return emptyState(el, "not available");
  el.replaceChildren();
  el.dataset.generatedAt = String(body.generated_at || 0);
  const groups = (body.groups || []).map((g) =>
    row([g.group, fmtNum(g.lag)], { group: g.group, value: String(g.lag) }, g.lag > 0));
  const late = Number(body.late_records) || 0;
  const dlq = (body.dlq || []).map((d) =>
    row([d.topic, fmtNum(d.records)], { topic: d.topic, value: String(d.records) }, d.records > 0));
  const lateRow = row(["events.late", fmtNum(late)], { late: "", value: String(late) });
  lateRow.id = "pipeline-late";
  el.append(
    table(["consumer group", "lag (records)"], groups, "no consumer groups"),
    table(["late / dead letters", "records"], [lateRow, ...dlq], ""),
  );
}

// --- live mode ---------------------------------------------------------------

let source = null;
let poll = null;
let pending = null;

function scheduleRefresh() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    refresh();
  }, 300);
}

function setLive(on) {
  state.live = on;
  source?.close();
  source = null;
  clearInterval(poll);
  if (!on) return;
  poll = setInterval(scheduleRefresh, 10_000); // a safety net if the stream is down
  if (!("EventSource" in window)) return;
  source = new EventSource("/api/v1/stream");
  source.onmessage = scheduleRefresh;
  source.addEventListener("window", scheduleRefresh);
  source.onerror = () => {
    // The browser reconnects by itself; polling covers the gap.
  };
}

// --- controls ----------------------------------------------------------------

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("streamwatch-theme", theme);
  for (const id of Object.keys(charts)) {
    charts[id].dispose();
    delete charts[id];
  }
}

function init() {
  const params = new URLSearchParams(location.search);
  applyTheme(params.get("theme") || localStorage.getItem("streamwatch-theme") || "dark");
  state.range = params.get("range") || "latest";
  $("range").value = state.range;
  $("range").addEventListener("change", (e) => {
    state.range = e.target.value;
    refresh();
  });
  $("live").checked = params.get("live") !== "0";
  $("live").addEventListener("change", (e) => setLive(e.target.checked));
  $("theme").addEventListener("click", () => {
    applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
    refresh();
  });
  $("fullscreen").addEventListener("click", () => {
    document.body.classList.toggle("bigscreen");
    if (document.fullscreenEnabled) {
      if (document.fullscreenElement) document.exitFullscreen();
      else document.documentElement.requestFullscreen().catch(() => {});
    }
    setTimeout(() => Object.values(charts).forEach((c) => c.resize()), 100);
  });
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  setLive($("live").checked);
  refresh();
}

init();
