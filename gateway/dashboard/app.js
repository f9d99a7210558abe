// The coverage dashboard: reads the gateway's API with the user's token, redraws every few seconds.
"use strict";

const state = {
  token: localStorage.getItem("tracegw-token") || "",
  lang: localStorage.getItem("tracegw-lang") || "zh",
  labels: {}, thresholds: {}, data: {}, sort: {}, chart: null, open: {},
  refreshMs: Number(new URLSearchParams(location.search).get("refresh_ms")) || 5000,
};
const RATES = ["coverage", "valid_scan_rate", "duplicate_rate", "consistency_error_rate", "upload_rate"];
const $ = (id) => document.getElementById(id);
const t = (key) => (state.labels[state.lang] || {})[key] || key;

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options, headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), { status: response.status });
  return body;
}

function applyLabels() {
  document.documentElement.lang = state.lang === "zh" ? "zh" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-label]")) node.textContent = t(node.dataset.label);
  for (const node of document.querySelectorAll("[data-label-window]")) {
    node.textContent = `${t("window")} ${node.dataset.labelWindow} ${t("hours")}`;
  }
}

function periodQuery() {
  const period = $("period").value;
  const query = new URLSearchParams();
  if (period === "day" && $("day").value) query.set("day", $("day").value);
  else if (period !== "today" && period !== "day") query.set("window_h", period);
  if ($("region").value) query.set("region", $("region").value.trim());
  if ($("institution_type").value) query.set("institution_type", $("institution_type").value);
  return query;
}

// A rate's class: lower is better for duplicates and consistency errors, higher for the others.
function grade(name, value) {
  const limits = state.thresholds[name];
  if (value === null || value === undefined || !limits) return "";
  if (limits.higher_is_better) return value >= limits.good ? "good" : value >= limits.warn ? "warn" : "bad";
  return value <= limits.good ? "good" : value <= limits.warn ? "warn" : "bad";
}

const percent = (value) => (value === null || value === undefined ? "-" : `${(value * 100).toFixed(1)}%`);
const when = (ms) => (ms ? new Date(ms).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB") : t("never"));

// columns: [key, label, render(row) -> [text, className]]
function drawTable(id, columns, rows) {
  const table = $(id);
  const sort = state.sort[id];
  if (sort) {
    rows = [...rows].sort((a, b) => {
      const x = a[sort.key], y = b[sort.key];
      const order = x === y ? 0 : x === null || x === undefined ? -1 : y === null || y === undefined ? 1 : x < y ? -1 : 1;
      return sort.desc ? -order : order;
    });
  }
  state.data[id] = { columns, rows };
  const head = columns.map(([key, label]) => {
    const mark = sort && sort.key === key ? (sort.desc ? "sorted-desc" : "sorted-asc") : "";
    return `<th data-key="${key}" class="${mark}">${escape(t(label))}</th>`;
  }).join("");
  const body = rows.length ? rows.map((row) => `<tr>${columns.map(([key, , render]) => {
    const [text, css] = render(row);
    return `<td class="${css || ""}">${text}</td>`;
  }).join("")}</tr>`).join("") : `<tr><td colspan="${columns.length}">${escape(t("no_rows"))}</td></tr>`;
  table.innerHTML = `<thead><tr>${head}</tr></thead><tbody>${body}</tbody>`;
  for (const th of table.querySelectorAll("th")) {
    th.onclick = () => {
      const current = state.sort[id];
      state.sort[id] = { key: th.dataset.key, desc: current && current.key === th.dataset.key ? !current.desc : false };
      drawTable(id, columns, state.data[id].rows);
    };
  }
  if (id === "alerts") bindAlertButtons();
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function rateColumns(withTerminal) {
  const columns = [["institution", "institution", (row) => [escape(row.institution)]]];
  if (withTerminal) columns.push(["terminal", "terminal", (row) => [escape(row.terminal)]]);
  for (const name of RATES) columns.push([name, name, (row) => [percent(row[name]), `number ${grade(name, row[name])}`]]);
  for (const name of ["scans", "units_required", "missing_seqs"]) {
    columns.push([name, name, (row) => [String(row[name]), `number ${name === "missing_seqs" && row[name] ? "bad" : ""}`]]);
  }
  return columns;
}

const alertColumns = [
  ["severity", "severity", (row) => [escape(row.severity), row.severity === "warning" ? "warn" : "bad"]],
  ["type", "type", (row) => [escape(row.type)]],
  ["state", "state", (row) => [escape(t(row.state))]],
  ["institution", "institution", (row) => [escape(row.institution)]],
  ["terminal", "terminal", (row) => [escape(row.terminal)]],
  ["count", "count", (row) => [String(row.count), "number"]],
  ["last_ms", "last", (row) => [escape(when(row.last_ms))]],
  ["detail", "detail", (row) => [escape(row.detail.replace(/\u001d/g, "<GS>")), "detail"]],
  ["changed_by", "changed_by", (row) => [escape(row.changed_by || "-")]],
  ["events", "evidence", (row) => [`<a href="#" class="evidence" data-id="${row.id}">${escape(`${t("events")}: ${row.events.length}, ${t("tickets")}: ${row.tickets.length}`)}</a>`
    + (state.open[row.id] ? `<div class="proof">${state.open[row.id]}</div>` : ""), "detail"]],
  ["id", "", (row) => [
    (row.state === "open" ? `<button class="ack" data-id="${row.id}" data-state="acknowledged">${escape(t("acknowledge"))}</button> ` : "")
    + `<button class="resolve" data-id="${row.id}" data-state="resolved">${escape(t("resolve"))}</button>`]],
];

const deviceColumns = [
  ["device", "device", (row) => [escape(row.device)]],
  ["terminal", "terminal", (row) => [escape(row.terminal)]],
  ["institution", "institution", (row) => [escape(row.institution)]],
  ["online", "online", (row) => [escape(row.online ? t("online") : row.status_ms ? t("offline") : t("never")), row.online ? "good" : "bad"]],
  ["status_ms", "last_seen", (row) => [escape(when(row.status_ms))]],
  ["backlog", "backlog", (row) => [String(row.backlog), `number ${row.backlog > state.thresholds.backlog_warn ? "warn" : ""}`]],
  ["firmware", "firmware", (row) => [escape(row.firmware || "-")]],
  ["clock", "clock", (row) => [escape(t(`clock_${row.clock}`)), row.clock ? "good" : "warn"]],
  ["missing_seqs", "missing_seqs", (row) => [String(row.missing_seqs), `number ${row.missing_seqs ? "bad" : ""}`]],
];

// Device commands (the audit log; admins also send them): who, when, what, and the device's answer.
const showJson = (value) => (value === null || value === undefined ? "-" : JSON.stringify(value));
const commandColumns = [
  ["issued_ms", "issued", (row) => [escape(when(row.issued_ms))]],
  ["issued_by", "issued_by", (row) => [escape(row.issued_by)]],
  ["device", "device", (row) => [escape(row.device)]],
  ["kind", "command", (row) => [escape(t(`cmd_${row.kind}`))]],
  ["argument", "argument", (row) => [escape(showJson(row.argument)), "detail"]],
  ["state", "state", (row) => [escape(t(row.state)), row.state === "answered" ? "" : row.state === "sent" || row.state === "queued" ? "warn" : "bad"]],
  ["result", "result", (row) => [escape(row.result || "-"), row.result === "applied" ? "good" : row.result ? "bad" : ""]],
  ["answer", "answer", (row) => [escape(showJson(row.answer)), "detail"]],
];

// The argument as typed: a number (mode, resend, time), NAME=NUMBER pairs (config), nothing (reboot; time: now).
function commandArgument(kind, text) {
  text = text.trim();
  if (kind === "reboot") return null;
  if (kind === "time" && !text) return Date.now();
  if (kind === "config") {
    const pairs = text.split(/[,\s]+/).filter(Boolean).map((pair) => pair.split("="));
    if (!pairs.length || pairs.some((pair) => pair.length !== 2 || !/^\d+$/.test(pair[1]))) throw new Error(t("bad_argument"));
    return Object.fromEntries(pairs.map(([name, value]) => [name, Number(value)]));
  }
  if (!/^\d+$/.test(text)) throw new Error(t("bad_argument"));
  return Number(text);
}

async function sendCommand() {
  const kind = $("control-kind").value, device = $("control-device").value;
  try {
    const argument = commandArgument(kind, $("control-argument").value);
    if (kind === "reboot" && !confirm(`${t("confirm_reboot")} ${device}`)) return;
    const queued = await api("/api/v1/commands", { method: "POST", body: JSON.stringify({ device, command: kind, argument }) });
    $("control-result").textContent = `${t("cmd_" + kind)} ${device}: ${t(queued.state)}`;
    for (let tries = 0; tries < 40; tries += 1) {  // follow it until the device answers (or 20 s pass)
      await new Promise((resolve) => setTimeout(resolve, 500));
      const row = await api(`/api/v1/commands/${queued.id}`);
      $("control-result").textContent = `${t("cmd_" + kind)} ${device}: ${t(row.state)}`
        + (row.result ? ` — ${row.result}${row.answer === null ? "" : " " + showJson(row.answer)}` : "");
      if (row.state !== "queued" && row.state !== "sent") break;
    }
    await refresh();
  } catch (error) {
    $("control-result").textContent = `${t("error")}: ${error.message}`;
  }
}

function updateDeviceChoices(rows) {
  const select = $("control-device");
  const chosen = select.value;
  const names = rows.map((row) => row.device);
  if (names.join() !== [...select.options].map((o) => o.value).join()) {
    select.innerHTML = names.map((name) => `<option>${escape(name)}</option>`).join("");
    if (names.includes(chosen)) select.value = chosen;
  }
}

async function refresh() {
  try {
    const query = periodQuery();
    const [institutions, terminals, alerts, devices, commands] = await Promise.all([
      api(`/api/v1/rates?scope=institution&${query}`), api(`/api/v1/rates?scope=terminal&${query}`),
      api("/api/v1/alerts?state=live&limit=200"), api("/api/v1/devices"), api("/api/v1/commands?limit=20"),
    ]);
    drawTable("commands", commandColumns, commands.commands);
    updateDeviceChoices(devices.devices);
    drawTable("institutions", rateColumns(false), institutions.rates);
    drawTable("terminals", rateColumns(true), terminals.rates);
    drawTable("alerts", alertColumns, alerts.alerts);
    drawTable("devices", deviceColumns, devices.devices);
    updateTerminalChoices(terminals.rates);
    await drawChart();
    $("error").textContent = "";
    $("updated").textContent = `${t("updated")} ${new Date().toLocaleTimeString()}`;
    $("updated").dataset.at = String(Date.now());
  } catch (error) {
    if (error.status === 401) return showLogin(error.message);
    $("error").textContent = `${t("error")}: ${error.message}`;
  }
}

async function showEvidence(id) {
  if (state.open[id]) { delete state.open[id]; drawTable("alerts", alertColumns, state.data.alerts.rows); return; }
  const proof = await api(`/api/v1/alerts/${id}/evidence`);
  const events = proof.events.map((e) => `${escape(when(e.event_ms))} ${escape(e.device)}#${e.seq} ${escape(e.terminal)} `
    + `${escape(String(e.code).replace(/\u001d/g, "<GS>"))}${e.ticket ? " " + escape(e.ticket) : ""}${e.split_qty ? " ×" + e.split_qty : ""}`);
  const tickets = proof.tickets.map((k) => `${escape(k.number)} ${escape(k.terminal)} ${escape(when(k.time_ms))}: `
    + k.lines.map((l) => `${escape(l.list_code)}×${l.quantity}${l.split ? "(split)" : ""} ${l.scans}/${l.needed}`).join(", "));
  state.open[id] = [...events, ...tickets].map((line) => `<div>${line}</div>`).join("");
  drawTable("alerts", alertColumns, state.data.alerts.rows);
}

function bindAlertButtons() {
  for (const link of document.querySelectorAll("#alerts a.evidence")) {
    link.onclick = (event) => { event.preventDefault(); showEvidence(link.dataset.id).catch((error) => { $("error").textContent = error.message; }); };
  }
  for (const button of document.querySelectorAll("#alerts button")) {
    button.onclick = async () => {
      try {
        await api(`/api/v1/alerts/${button.dataset.id}`, { method: "POST", body: JSON.stringify({ state: button.dataset.state, note: "dashboard" }) });
        await refresh();
      } catch (error) {
        $("error").textContent = error.status === 403 ? t("write_token_needed") : `${t("error")}: ${error.message}`;
      }
    };
  }
}

function updateTerminalChoices(rows) {
  const select = $("chart-terminal");
  const chosen = select.value;
  const names = [...new Set(rows.map((row) => row.terminal))].sort();
  if (names.join() !== [...select.options].map((o) => o.value).join()) {
    select.innerHTML = names.map((name) => `<option>${escape(name)}</option>`).join("");
    if (names.includes(chosen)) select.value = chosen;
  }
}

async function drawChart() {
  const terminal = $("chart-terminal").value;
  if (!terminal) return;
  const step = $("chart-step").value;
  const query = new URLSearchParams({ terminal, step, window_h: step === "day" ? "720" : "48" });
  const series = await api(`/api/v1/rates/series?${query}`);
  const points = series.points;
  const data = [points.map((p) => p.start_ms / 1000), points.map((p) => (p.coverage === null ? null : p.coverage * 100)), points.map((p) => p.scans)];
  const options = {
    width: Math.min(960, document.body.clientWidth - 40), height: 260,
    series: [{}, { label: t("coverage") + " %", stroke: "#116329", scale: "%", spanGaps: false, points: { show: true } }, { label: t("scans"), stroke: "#0969da", scale: "n", paths: uPlot.paths.bars({ size: [0.6, 40] }), fill: "rgba(9,105,218,0.15)" }],
    axes: [{}, { scale: "%", values: (u, ticks) => ticks.map((v) => `${v}%`) }, { scale: "n", side: 1, grid: { show: false } }],
    scales: { "%": { range: [0, 100] } },
  };
  const key = `${terminal}|${step}|${state.lang}`;
  if (state.chart && state.chartKey === key) return state.chart.setData(data);  // keep the canvas, new points
  if (state.chart) state.chart.destroy();
  state.chart = new uPlot(options, data, $("chart"));
  state.chartKey = key;
}

function exportCsv(id) {
  const { columns, rows } = state.data[id] || { columns: [], rows: [] };
  const usable = columns.filter(([key, label]) => label);
  const quote = (value) => `"${String(value ?? "").replace(/"/g, '""')}"`;
  const lines = [usable.map(([, label]) => quote(t(label))).join(",")];
  for (const row of rows) lines.push(usable.map(([key]) => quote(Array.isArray(row[key]) ? row[key].join(" ") : row[key])).join(","));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob(["\ufeff" + lines.join("\r\n")], { type: "text/csv;charset=utf-8" }));
  link.download = `${id}.csv`;
  link.click();
}

function showLogin(message) {
  $("board").hidden = true;
  $("logout").hidden = true;
  $("login-box").hidden = false;
  $("login-error").textContent = message || "";
}

async function start() {
  try {
    state.thresholds = await api("/api/v1/dashboard/settings");
  } catch (error) {
    return showLogin(state.token ? error.message : "");
  }
  const me = await api("/api/v1/me").catch(() => ({ name: "", role: "read" }));
  $("who").textContent = me.name ? `${t("signed_in_as")} ${me.name} (${me.role})` : "";
  $("control").hidden = me.role !== "admin";
  $("login-box").hidden = true;
  $("board").hidden = false;
  $("logout").hidden = false;
  await refresh();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, state.refreshMs);
}

async function main() {
  state.labels = await (await fetch("labels.json")).json();
  applyLabels();
  $("language").onclick = () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("tracegw-lang", state.lang);
    applyLabels();
    $("control-kind").onchange();
    refresh();
  };
  $("login").onclick = () => {
    state.token = $("token").value.trim();
    localStorage.setItem("tracegw-token", state.token);
    start();
  };
  $("logout").onclick = () => {
    localStorage.removeItem("tracegw-token");
    state.token = "";
    clearInterval(state.timer);
    showLogin("");
  };
  $("period").onchange = () => { $("day").hidden = $("period").value !== "day"; refresh(); };
  for (const id of ["day", "region", "institution_type", "chart-terminal", "chart-step"]) $(id).onchange = refresh;
  for (const button of document.querySelectorAll("button.csv")) button.onclick = () => exportCsv(button.dataset.table);
  $("control-send").onclick = sendCommand;
  $("control-kind").onchange = () => { $("control-hint").textContent = t(`hint_${$("control-kind").value}`); };
  $("control-kind").onchange();
  if (state.token) start(); else showLogin("");
}

main();
