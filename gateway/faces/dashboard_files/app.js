// The coverage dashboard: reads the gateway's API with the user's token, redraws every few seconds.
// Tables follow tables.json and words labels.json, the same files the server's export (gateway/faces/export.py) reads,
// and each cell format below matches one there, so a CSV or Excel file holds what the screen shows.
"use strict";

const state = {
  token: localStorage.getItem("tracegw-token") || "",
  lang: localStorage.getItem("tracegw-lang") || "zh",
  labels: {}, tables: {}, thresholds: {}, timezone: "Asia/Shanghai", data: {}, sort: {}, chart: null, open: {},
  institutions: [], user: "", role: "",
  refreshMs: Number(new URLSearchParams(location.search).get("refresh_ms")) || 5000,
};
const $ = (id) => document.getElementById(id);
const t = (key) => (state.labels[state.lang] || {})[key] || key;
const PALETTE = ["#116329", "#0969da", "#cf222e", "#8250df", "#9a6700", "#1b7c83", "#bf3989", "#57606a",
  "#fb8500", "#2da44e", "#4c2889", "#0550ae"];

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      ...options, headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
    });
  } catch (error) {
    throw new ApiError(0, error.message);
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new ApiError(response.status, body.error || response.statusText);
  }
  return options.raw ? response : response.json();
}

// What the user reads for a failed call: in the page's language, the API's own words after it where they help.
function failure(error) {
  if (!(error instanceof ApiError)) return `${t("error")}: ${error.message}`;
  if (error.status === 0) return t("error_network");
  if (error.status === 400 || error.status === 422) return `${t("error_400")}: ${error.message}`;
  const known = { 401: "error_401", 403: "error_403", 404: "error_404", 409: "error_409", 503: "error_503" };
  return known[error.status] ? t(known[error.status]) : `${t("error")} ${error.status}: ${error.message}`;
}

function applyLabels() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-label]")) node.textContent = t(node.dataset.label);
  for (const node of document.querySelectorAll("[data-label-window]")) {
    node.textContent = `${t("window")} ${node.dataset.labelWindow} ${t("hours")}`;
  }
  for (const holder of document.querySelectorAll(".exports")) {
    holder.innerHTML = ["csv", "xlsx"].map((format) => `<button type="button" class="export" data-table="${holder.dataset.table}" `
      + `data-format="${format}">${escape(t(`export_${format}`))}</button>`).join("");
  }
  for (const button of document.querySelectorAll("button.export")) {
    button.onclick = () => download(button.dataset.table, button.dataset.format).catch((error) => { $("error").textContent = failure(error); });
  }
  fillFilterChoices();
  showUser();
  $("control-hint").textContent = t(`hint_${$("control-kind").value}`);
}

// The period and filters as API parameters; a half-chosen range is the user's to finish, not the API's to refuse.
function filterQuery() {
  const period = $("period").value;
  const query = new URLSearchParams();
  if (period === "day" && $("day").value) query.set("day", $("day").value);
  else if (period === "range") {
    if (!$("from").value || !$("to").value) throw new Error(t("range_missing"));
    if ($("from").value > $("to").value) throw new Error(t("range_inverted"));
    if (periodHours() > 366 * 24) throw new Error(t("range_too_long"));
    query.set("from", $("from").value);
    query.set("to", $("to").value);
  } else if (period !== "today" && period !== "day") query.set("window_h", period);
  for (const id of ["institution", "terminal", "region", "institution_type"]) {
    const value = $(id).value.trim();
    if (value) query.set(id, value);
  }
  return query;
}

function periodHours() {
  const period = $("period").value;
  if (period === "range") return ((Date.parse($("to").value) - Date.parse($("from").value)) / 3600e3) + 24;
  return period === "today" || period === "day" ? 24 : Number(period);
}

// A rate's class: lower is better for duplicates, consistency errors and swaps, higher for the others.
function grade(name, value) {
  const limits = state.thresholds[name];
  if (value === null || value === undefined || !limits) return "";
  if (limits.higher_is_better) return value >= limits.good ? "good" : value >= limits.warn ? "warn" : "bad";
  return value <= limits.good ? "good" : value <= limits.warn ? "warn" : "bad";
}

// Cell formats (the same names and results as gateway/faces/export.py).
const percent = (value) => (value === null || value === undefined ? "-" : `${(value * 100).toFixed(1)}%`);
function clock(ms) {  // the wall clock of the configured zone, whatever the browser's zone
  const parts = {};
  const format = new Intl.DateTimeFormat("en-GB", { timeZone: state.timezone, year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  for (const part of format.formatToParts(new Date(ms))) parts[part.type] = part.value;
  return parts;
}
function when(ms) {
  if (!ms) return t("never");
  const { year, month, day, hour, minute, second } = clock(ms);
  return state.lang === "zh" ? `${year}/${month}/${day} ${hour}:${minute}:${second}` : `${day}/${month}/${year} ${hour}:${minute}:${second}`;
}
function shortWhen(ms) {  // a chart's axis: day and hour
  const { month, day, hour, minute } = clock(ms);
  return state.lang === "zh" ? `${month}/${day} ${hour}:${minute}` : `${day}/${month} ${hour}:${minute}`;
}
const text = (value) => (value === null || value === undefined || value === "" ? "-" : String(value).replace(/\u001d/g, "<GS>"));
const json = (value) => (value === null || value === undefined ? null : JSON.stringify(value));
function shown(row, key, format) {
  const value = row[key];
  if (format === "percent") return percent(value);
  if (format === "count") return value === null || value === undefined ? "-" : String(value);
  if (format === "time") return when(value);
  if (format.startsWith("label:")) return text(t(format.slice(6) + value));
  if (format === "connection") return text(t(value ? "online" : row.status_ms ? "offline" : "never"));
  if (format === "localized") return text(state.lang === "zh" ? row[`${key}_zh`] || value : value);
  if (format === "json") return text(json(value));
  return text(value);
}

// The colour of a cell, by what its column holds.
function tone(row, key, format) {
  const value = row[key];
  if (format === "percent") return `number ${grade(key, value)}`;
  if (key === "missing_seqs") return `number ${value ? "bad" : ""}`;
  if (key === "backlog") return `number ${value > state.thresholds.backlog_warn ? "warn" : ""}`;
  if (format === "count") return "number";
  if (key === "severity") return value === "warning" ? "warn" : "bad";
  if (key === "online") return value ? "good" : "bad";
  if (key === "clock") return value ? "good" : "warn";
  if (format === "label:command_") return value === "answered" ? "good" : value === "sent" || value === "queued" ? "warn" : "bad";
  if (key === "result") return `detail ${value === "applied" ? "good" : value ? "bad" : ""}`;
  if (format === "localized" || format === "json") return "detail";
  return "";
}

function escape(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// The page-only columns after the exported ones: an alert's evidence and its buttons.
const EXTRA = {
  alerts: [
    ["evidence", (row) => `<a href="#" class="evidence" data-id="${row.id}">${escape(`${t("events")}: ${row.events.length}, ${t("tickets")}: ${row.tickets.length}`)}</a>`
      + (state.open[row.id] ? `<div class="proof">${state.open[row.id]}</div>` : "")],
    ["", (row) => (row.state === "open" ? `<button class="ack" data-id="${row.id}" data-state="acknowledged">${escape(t("acknowledge"))}</button> ` : "")
      + `<button class="resolve" data-id="${row.id}" data-state="resolved">${escape(t("resolve"))}</button>`],
  ],
};

// Sorted by the raw value as gateway/faces/export.py sorts a file (a json column: by its text).
function sorted(id, rows) {
  const sort = state.sort[id];
  if (!sort) return rows;
  const column = state.tables[id].find(([key]) => key === sort.key);
  const value = column && column[2] === "json" ? (row) => json(row[sort.key]) : (row) => row[sort.key];
  return [...rows].sort((a, b) => {
    const x = value(a), y = value(b);
    const missing = (v) => v === null || v === undefined;
    const order = x === y || (missing(x) && missing(y)) ? 0 : missing(x) ? -1 : missing(y) ? 1 : x < y ? -1 : 1;
    return sort.desc ? -order : order;
  });
}

function drawTable(id, rows) {
  const columns = state.tables[id];
  const extra = EXTRA[id] || [];
  const table = $(id);
  state.data[id] = rows;
  rows = sorted(id, rows);
  const sort = state.sort[id];
  const head = columns.map(([key, label]) => {
    const mark = sort && sort.key === key ? (sort.desc ? "sorted-desc" : "sorted-asc") : "";
    return `<th data-key="${key}" class="${mark}">${escape(t(label))}</th>`;
  }).join("") + extra.map(([label]) => `<th>${escape(label ? t(label) : "")}</th>`).join("");
  const body = rows.length ? rows.map((row) => `<tr>${columns.map(([key, label, format]) => `<td class="${tone(row, key, format)}" `
    + `data-label="${escape(t(label))}">${escape(shown(row, key, format))}</td>`).join("")}`
    + `${extra.map(([label, render]) => `<td class="${label ? "evidence" : "actions"}" data-label="${escape(label ? t(label) : "")}">${render(row)}</td>`).join("")}</tr>`).join("")
    : `<tr><td colspan="${columns.length + extra.length}">${escape(t("no_rows"))}</td></tr>`;
  table.innerHTML = `<thead><tr>${head}</tr></thead><tbody>${body}</tbody>`;
  for (const th of table.querySelectorAll("th[data-key]")) {
    th.onclick = () => {
      const current = state.sort[id];
      state.sort[id] = { key: th.dataset.key, desc: current && current.key === th.dataset.key ? !current.desc : false };
      drawTable(id, state.data[id]);
    };
  }
  if (id === "alerts") bindAlertButtons();
}

function drawOutbox(outbox) {
  const rows = outbox.rows || {};
  const figures = ["held", "pending", "sending", "retrying", "dead", "withheld", "withdrawn", "done"].map((name) => {
    const css = name === "dead" && rows[name] ? "bad" : name === "retrying" && rows[name] ? "warn" : "";
    return `<div class="${css}" id="outbox-${name}"><dt>${escape(t(`outbox_${name}`))}</dt><dd>${rows[name] ?? 0}</dd></div>`;
  });
  figures.push(`<div id="outbox-oldest"><dt>${escape(t("outbox_oldest"))}</dt><dd>${escape(outbox.oldest_unsettled_ms ? when(outbox.oldest_unsettled_ms) : "-")}</dd></div>`);
  $("outbox").innerHTML = figures.join("");
}

async function refresh() {
  let query;
  try {
    query = filterQuery();
  } catch (error) {
    $("error").textContent = error.message;
    return;
  }
  try {
    const scoped = new URLSearchParams([...query].filter(([name]) => name === "institution" || name === "terminal"));
    const [listed, institutions, terminals, alerts, devices, outbox, dead, commands] = await Promise.all([
      api("/api/v1/institutions"),
      api(`/api/v1/rates?scope=institution&${query}`), api(`/api/v1/rates?scope=terminal&${query}`),
      api(`/api/v1/alerts?state=live&limit=200&${scoped}`), api(`/api/v1/devices?${scoped}`),
      api("/api/v1/outbox"), api("/api/v1/deadletters?limit=200"), api(`/api/v1/commands?limit=${COMMANDS_SHOWN}`),
    ]);
    state.institutions = listed.institutions;
    fillFilterChoices();
    drawTable("institutions", institutions.rates);
    drawTable("terminals", terminals.rates);
    drawTable("alerts", alerts.alerts);
    drawTable("devices", devices.devices);
    drawOutbox(outbox);
    drawTable("deadletters", dead.dead_letters);
    drawTable("commands", commands.commands);
    fillDeviceChoices(devices.devices);
    await drawChart(query);
    $("error").textContent = "";
    $("updated").textContent = `${t("updated")} ${when(Date.now())}`;
    $("updated").dataset.at = String(Date.now());
  } catch (error) {
    if (error.status === 401) return showLogin(failure(error));
    $("error").textContent = failure(error);
  }
}

// The institution choices (code and name) and the terminals of the chosen one, keeping what is chosen.
function fillFilterChoices() {
  const fill = (select, choices) => {
    const chosen = select.value;
    const html = [`<option value="">${escape(t("all"))}</option>`, ...choices.map(([value, shownText]) => `<option value="${escape(value)}">${escape(shownText)}</option>`)].join("");
    if (select.dataset.html !== html) {
      select.innerHTML = html;
      select.dataset.html = html;
      select.value = choices.some(([value]) => value === chosen) ? chosen : "";
    }
  };
  fill($("institution"), state.institutions.map((row) => [row.institution, row.institution_name ? `${row.institution} ${row.institution_name}` : row.institution]));
  const chosen = state.institutions.filter((row) => !$("institution").value || row.institution === $("institution").value);
  fill($("terminal"), [...new Set(chosen.flatMap((row) => row.terminals))].sort().map((name) => [name, name]));
}

async function showEvidence(id) {
  if (state.open[id]) { delete state.open[id]; drawTable("alerts", state.data.alerts); return; }
  const proof = await api(`/api/v1/alerts/${id}/evidence`);
  const events = proof.events.map((e) => `${escape(when(e.event_ms))} ${escape(e.device)}#${e.seq} ${escape(e.terminal)} `
    + `${escape(text(e.code))}${e.ticket ? " " + escape(e.ticket) : ""}${e.split_qty ? " ×" + e.split_qty : ""}`);
  const tickets = proof.tickets.map((k) => `${escape(k.number)} ${escape(k.terminal)} ${escape(when(k.time_ms))}: `
    + k.lines.map((l) => `${escape(l.list_code)}×${l.quantity}${l.split ? `(${escape(t("split"))})` : ""} ${l.scans}/${l.needed}`).join(", "));
  state.open[id] = [...events, ...tickets].map((line) => `<div>${line}</div>`).join("");
  drawTable("alerts", state.data.alerts);
}

function bindAlertButtons() {
  for (const link of document.querySelectorAll("#alerts a.evidence")) {
    link.onclick = (event) => { event.preventDefault(); showEvidence(link.dataset.id).catch((error) => { $("error").textContent = failure(error); }); };
  }
  for (const button of document.querySelectorAll("#alerts button")) {
    button.onclick = async () => {
      try {
        await api(`/api/v1/alerts/${button.dataset.id}`, { method: "POST", body: JSON.stringify({ state: button.dataset.state, note: "dashboard" }) });
        await refresh();
      } catch (error) {
        $("error").textContent = error.status === 403 ? t("acknowledge_role_needed") : failure(error);
      }
    };
  }
}

// One line per terminal (the busiest twelve of the filters) of the chosen figure over the chosen period.
async function drawChart(query) {
  const step = periodHours() <= 7 * 24 ? "hour" : "day";
  const trends = await api(`/api/v1/rates/series?by=terminal&step=${step}&${query}`);
  const metric = $("chart-metric").value;
  const lines = trends.terminals;
  const figure = (point) => {
    if (metric === "scans") return point.scans;
    if (metric === "valid_scan_rate") return point.scans ? (point.valid_scans / point.scans) * 100 : null;
    return point.coverage === null ? null : point.coverage * 100;
  };
  const times = lines.length ? lines[0].points.map((p) => p.start_ms / 1000) : [];
  const data = [times, ...lines.map((line) => line.points.map(figure))];
  $("chart-note").textContent = trends.left_out ? t("chart_left_out").replace("{n}", trends.left_out) : "";
  const width = Math.max(200, $("chart").clientWidth || 300);
  const key = `${lines.map((l) => `${l.institution}/${l.terminal}`).join()}|${metric}|${step}|${state.lang}|${width}`;
  if (state.chart && state.chartKey === key) return state.chart.setData(data);  // keep the canvas, new points
  if (state.chart) state.chart.destroy();
  const percentAxis = metric !== "scans";
  const options = {
    width, height: 260,
    series: [{ label: t("time"), value: (u, seconds) => (seconds ? when(seconds * 1000) : "-") },
      ...lines.map((line, index) => ({ label: line.terminal, stroke: PALETTE[index % PALETTE.length], spanGaps: false,
        points: { show: true }, value: (u, v) => (v === null || v === undefined ? "-" : percentAxis ? `${v.toFixed(1)}%` : String(v)) }))],
    axes: [{ values: (u, ticks) => ticks.map((s) => shortWhen(s * 1000)), space: 80 },
      { values: (u, ticks) => ticks.map((v) => (percentAxis ? `${v}%` : String(v))) }],
    tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), state.timezone),
    scales: { y: percentAxis ? { range: [0, 100] } : {} },
  };
  state.chart = new uPlot(options, data, $("chart"));
  state.chartKey = key;
}

// A table as a file, made by the API from the same filters, language and sort as the screen.
async function download(table, format) {
  const query = filterQuery();
  if (table === "alerts") { query.set("state", "live"); query.set("limit", "200"); }
  if (table === "deadletters") { query.delete("institution"); query.delete("terminal"); query.set("limit", "200"); }
  if (table === "commands") { query.delete("institution"); query.delete("terminal"); query.set("limit", String(COMMANDS_SHOWN)); }
  if (!["institutions", "terminals"].includes(table)) {
    for (const name of ["day", "window_h", "from", "to", "region", "institution_type"]) query.delete(name);
  }
  query.set("table", table);
  query.set("format", format);
  query.set("lang", state.lang);
  const sort = state.sort[table];
  if (sort) { query.set("sort", sort.key); query.set("desc", sort.desc ? "1" : "0"); }
  const response = await api(`/api/v1/export?${query}`, { raw: true });
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = name ? name[1] : `${table}.${format}`;
  link.click();
}

function showLogin(message) {
  $("board").hidden = true;
  $("logout").hidden = true;
  $("login-box").hidden = false;
  $("login-error").textContent = message || "";
}

// The signed-in user and role (gateway/domain/users.py; the legacy shared tokens are the users read-token and
// write-token); an admin also gets the device command form.
function showUser() {
  $("user").hidden = !state.user;
  $("user").textContent = state.user ? `${t("user")}: ${state.user} (${t(`role_${state.role}`)})` : "";
  $("control").hidden = state.role !== "admin";
}

// The device commands: the newest COMMANDS_SHOWN of the audit log, and the form an admin sends one with.
const COMMANDS_SHOWN = 20;

function fillDeviceChoices(rows) {
  const select = $("control-device");
  const chosen = select.value;
  const names = rows.map((row) => row.device).sort();
  const html = names.map((name) => `<option value="${escape(name)}">${escape(name)}</option>`).join("");
  if (select.dataset.html !== html) {
    select.innerHTML = html;
    select.dataset.html = html;
    if (names.includes(chosen)) select.value = chosen;
  }
}

// The argument as typed: a number (mode, resend, time), NAME=NUMBER pairs (config), nothing (reboot; time: now).
function commandArgument(kind, typed) {
  typed = typed.trim();
  if (kind === "reboot") return null;
  if (kind === "time" && !typed) return Date.now();
  if (kind === "config") {
    const pairs = typed.split(/[,\s]+/).filter(Boolean).map((pair) => pair.split("="));
    if (!pairs.length || pairs.some((pair) => pair.length !== 2 || !/^\d+$/.test(pair[1]))) throw new Error(t("bad_argument"));
    return Object.fromEntries(pairs.map(([name, value]) => [name, Number(value)]));
  }
  if (!/^\d+$/.test(typed)) throw new Error(t("bad_argument"));
  return Number(typed);
}

// What became of a command, in the page's language: its state, and the device's result and answer once it came.
function commandOutcome(row) {
  const said = `${t(`cmd_${row.kind}`)} ${row.device}: ${t(`command_${row.state}`)}`;
  if (!row.result) return said;
  const answer = json(row.answer);
  return `${said} — ${shown(row, "result", "localized")}${answer === null ? "" : ` ${answer}`}`;
}

// Send one command as the signed-in admin and follow it until the device answers (or 20 s pass).
async function sendCommand() {
  const kind = $("control-kind").value, device = $("control-device").value;
  const result = $("control-result");
  try {
    const argument = commandArgument(kind, $("control-argument").value);
    if (kind === "reboot" && !confirm(`${t("confirm_reboot")} ${device}`)) return;
    result.textContent = `${t(`cmd_${kind}`)} ${device}: ${t("command_sending")}`;
    let row = await api("/api/v1/commands", { method: "POST", body: JSON.stringify({ device, command: kind, argument }) });
    result.textContent = commandOutcome(row);
    for (let tries = 0; tries < 40 && (row.state === "queued" || row.state === "sent"); tries += 1) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      row = await api(`/api/v1/commands/${row.id}`);
      result.textContent = commandOutcome(row);
    }
    await refresh();
  } catch (error) {
    result.textContent = error instanceof ApiError ? failure(error) : `${t("error")}: ${error.message}`;
  }
}

async function start() {
  try {
    const settings = await api("/api/v1/dashboard/settings");
    state.thresholds = settings;
    state.timezone = settings.timezone || state.timezone;
    state.user = settings.user || "";
    state.role = settings.role || "";
    showUser();
  } catch (error) {
    return showLogin(state.token ? failure(error) : "");
  }
  $("login-box").hidden = true;
  $("board").hidden = false;
  $("logout").hidden = false;
  await refresh();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, state.refreshMs);
}

async function main() {
  [state.labels, state.tables] = await Promise.all(["labels.json", "tables.json"].map(async (file) => (await fetch(file)).json()));
  applyLabels();
  $("language").onclick = () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("tracegw-lang", state.lang);
    applyLabels();
    refresh();
  };
  $("login").onclick = () => {
    state.token = $("token").value.trim();
    if (!state.token) return showLogin(t("token_empty"));
    localStorage.setItem("tracegw-token", state.token);
    start();
  };
  $("logout").onclick = () => {
    localStorage.removeItem("tracegw-token");
    state.token = "";
    clearInterval(state.timer);
    state.user = "";
    state.role = "";
    showUser();
    $("control-result").textContent = "";
    showLogin("");
  };
  $("period").onchange = () => {
    $("day").hidden = $("period").value !== "day";
    $("range").hidden = $("period").value !== "range";
    refresh();
  };
  $("institution").onchange = () => { fillFilterChoices(); refresh(); };
  for (const id of ["day", "from", "to", "terminal", "region", "institution_type", "chart-metric"]) $(id).onchange = refresh;
  $("control-send").onclick = sendCommand;
  $("control-kind").onchange = () => { $("control-hint").textContent = t(`hint_${$("control-kind").value}`); };
  window.addEventListener("resize", () => {  // a phone turned sideways: redraw the chart at the new width
    clearTimeout(state.resized);
    state.resized = setTimeout(() => { if (state.chart) refresh(); }, 300);
  });
  if (state.token) start(); else showLogin("");
}

main();
