// trayproxy's routing-log page. Everything that comes from requests (model ids, error
// bodies, headers) is put in the page with textContent, never parsed as HTML.
"use strict";

const API = "/_trayproxy/api";

// With [server] token set, the tray opens this page as /_trayproxy/#token=...: the fragment
// never reaches a server. Keep it for this tab only and send it with every call.
const TOKEN = (() => {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("trayproxy-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("trayproxy-token");
})();

function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (TOKEN) headers.Authorization = "Bearer " + TOKEN;
  return fetch(path, { ...options, headers, cache: "no-store" });
}
const MAX_ROWS = 500;
const $ = (sel) => document.querySelector(sel);
const state = { rows: [], period: "period", usage: null, filters: {}, models: new Set(), providers: new Set() };

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function ms(v) {
  if (v === null || v === undefined) return "–";
  return v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms";
}

function num(v) {
  return v === null || v === undefined ? "–" : Number(v).toLocaleString();
}

const ESTIMATED = "estimated by trayproxy: the provider reported no token counts";

function tokens(r) {
  if (r.prompt_tokens === null && r.completion_tokens === null) return "–";
  return (r.tokens_estimated ? "~" : "") + num(r.prompt_tokens) + " / " + num(r.completion_tokens);
}

function tokenCell(r) {
  const td = el("td", tokens(r), "num");
  if (r.tokens_estimated) { td.title = ESTIMATED; td.classList.add("estimated"); }
  return td;
}

// Money as `trayproxy usage` prints it: cents from a dollar up; below, four decimals
// ("$0.0042", "$0.50": no trailing zeros past the cents), more where four would hide a tiny
// sum; "$0" only for a real 0 (a free model).
function money(v) {
  if (v < 0) return "-" + money(-v);
  if (v === 0) return "$0";
  if (Math.round(v * 1e4) / 1e4 >= 1) {
    return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  const [whole, decimals] = v.toFixed(Math.max(4, 1 - Math.floor(Math.log10(v)))).split(".");
  return "$" + whole + "." + decimals.replace(/0+$/, "").padEnd(2, "0");
}

const UNPRICED = "no price is known for this model: its cost is unknown, not $0";

// A usage row's cost (a model's or a day's): the sum of its priced requests, "unknown"
// when none had a price (never $0), "–" when nothing was there to price.
function costCell(g) {
  if (g.cost === null || g.cost === undefined) {
    const td = el("td", g.unpriced ? "unknown" : "–", "num" + (g.unpriced ? " unknown" : ""));
    if (g.unpriced) td.title = UNPRICED;
    return td;
  }
  const td = el("td", (g.cost_estimated ? "~" : "") + money(g.cost), "num");
  if (g.cost_estimated) {
    td.title = "partly priced from token counts " + ESTIMATED;
    td.classList.add("estimated");
  }
  if (g.unpriced) td.appendChild(el("span", `+ ${g.unpriced} without a price`, "more"));
  return td;
}

function costText(g) {
  if (g.cost === null || g.cost === undefined) return g.unpriced ? `unknown (${g.unpriced} without a price)` : "–";
  return (g.cost_estimated ? "~" : "") + money(g.cost) + (g.unpriced ? ` + ${g.unpriced} without a price` : "");
}

function failed(r) {
  return r.status >= 400 || r.error !== null;
}

function matches(r) {
  const f = state.filters;
  if (f.model && r.client_model !== f.model) return false;
  if (f.provider && r.provider !== f.provider) return false;
  if (f.status === "ok" && failed(r)) return false;
  if (f.status === "error" && !failed(r)) return false;
  return true;
}

// ---------------------------------------------------------------- the request table

function row(r, fresh) {
  const tr = el("tr", null, fresh ? "new" : "");
  tr.dataset.uid = r.uid;
  tr.appendChild(el("td", new Date(r.time * 1000).toLocaleTimeString(), "time"));
  tr.appendChild(el("td", r.client_model || "–", "model"));
  const target = el("td", r.provider ? r.provider + " / " : "–", "model");
  if (r.upstream_model) target.appendChild(el("span", r.upstream_model, "sub"));
  tr.appendChild(target);
  tr.appendChild(el("td", r.endpoint));
  tr.appendChild(el("td", r.stream ? "yes" : "no"));
  tr.appendChild(el("td", String(r.status), "status s" + String(r.status)[0]));
  tr.appendChild(el("td", ms(r.ttfb_ms), "num"));
  tr.appendChild(el("td", ms(r.duration_ms), "num"));
  tr.appendChild(tokenCell(r));
  const err = el("td", null, "err");
  if (r.error) {
    const clamp = el("div", r.error, "clamp");
    clamp.title = r.error;
    err.appendChild(clamp);
  }
  tr.appendChild(err);
  tr.addEventListener("click", () => showDetail(r.uid));
  return tr;
}

function render() {
  const body = $("#log tbody");
  body.replaceChildren(...state.rows.map((r) => row(r, false)));
  $("#empty").hidden = state.rows.length > 0;
}

function remember(r) {
  let changed = false;
  if (r.client_model && !state.models.has(r.client_model)) { state.models.add(r.client_model); changed = true; }
  if (r.provider && !state.providers.has(r.provider)) { state.providers.add(r.provider); changed = true; }
  if (changed) fillSelects();
}

function fillSelect(name, values) {
  const select = $(`#filters select[name=${name}]`);
  const current = select.value;
  const options = [el("option", "all")];
  options[0].value = "";
  for (const v of [...values].sort()) {
    const o = el("option", v);
    o.value = v;
    options.push(o);
  }
  select.replaceChildren(...options);
  select.value = values.has(current) ? current : "";
}

function fillSelects() {
  fillSelect("model", state.models);
  fillSelect("provider", state.providers);
}

async function loadRows() {
  const q = new URLSearchParams({ limit: "200" });
  for (const [k, v] of Object.entries(state.filters)) if (v) q.set(k, v);
  const resp = await api(`${API}/logs?${q}`);
  const data = await resp.json();
  state.rows = data.data;
  state.rows.forEach(remember);
  render();
}

function onRecord(r) {
  remember(r);
  scheduleUsage();
  if (!matches(r)) return;
  state.rows.unshift(r);
  if (state.rows.length > MAX_ROWS) state.rows.length = MAX_ROWS;
  const body = $("#log tbody");
  body.insertBefore(row(r, true), body.firstChild);
  while (body.children.length > MAX_ROWS) body.removeChild(body.lastChild);
  $("#empty").hidden = true;
}

function live(on) {
  $("#live").textContent = on ? "live" : "reconnecting…";
  $("#live").className = on ? "" : "off";
}

// Server-sent events read with fetch (EventSource cannot send the token).
async function connect() {
  for (;;) {
    try {
      const resp = await api(`${API}/events`);
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      live(true);
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of block.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            try { onRecord(JSON.parse(line.slice(6))); } catch (e) { /* skip a bad event */ }
          }
        }
      }
    } catch (e) { /* reconnect below */ }
    live(false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// ---------------------------------------------------------------- usage and chart

let usageTimer = null;
function scheduleUsage() {
  if (usageTimer) return;
  usageTimer = setTimeout(() => { usageTimer = null; loadUsage(); }, 2000);
}

async function loadUsage() {
  try {
    const resp = await api(`${API}/usage?days=7`);
    state.usage = await resp.json();
    renderUsage();
  } catch (e) { /* keep the last one */ }
}

function renderUsage() {
  const u = state.usage;
  if (!u) return;
  const body = $("#summary tbody");
  const groups = u[state.period] || [];
  const rows = groups.map((g) => {
    const tr = el("tr");
    tr.appendChild(el("td", g.model, "model"));
    tr.appendChild(el("td", num(g.requests), "num"));
    tr.appendChild(el("td", num(g.errors), "num" + (g.errors ? " err" : "")));
    for (const value of [g.prompt_tokens, g.completion_tokens]) {
      const td = el("td", (g.estimated ? "~" : "") + num(value), "num");
      if (g.estimated) {
        td.title = `includes ${g.estimated} request${g.estimated === 1 ? "" : "s"} ${ESTIMATED}`;
        td.classList.add("estimated");
      }
      tr.appendChild(td);
    }
    tr.appendChild(costCell(g));
    tr.appendChild(el("td", ms(g.median_ms), "num"));
    tr.appendChild(el("td", ms(g.p95_ms), "num"));
    return tr;
  });
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "No requests in this period.");
    td.colSpan = 8;
    tr.appendChild(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  $("#estimate-note").hidden = !groups.some((g) => g.estimated);
  const daily = u.daily || [];
  $("#cost-note").hidden = ![...groups, ...daily].some((g) => g.unpriced);
  drawChart(daily);
  drawDaily(daily);
  drawSpend(u.today_cost, u.daily_budget);
}

function drawDaily(days) {
  $("#daily tbody").replaceChildren(...days.slice().reverse().map((d) => {
    const tr = el("tr");
    const day = new Date(d.date + "T12:00:00");
    tr.appendChild(el("td", day.toLocaleDateString(undefined, { weekday: "short", month: "short", day: "numeric" })));
    tr.appendChild(el("td", num(d.requests), "num"));
    const tokensTd = el("td", (d.estimated ? "~" : "") + num(d.tokens), "num");
    if (d.estimated) { tokensTd.title = "includes counts " + ESTIMATED; tokensTd.classList.add("estimated"); }
    tr.appendChild(tokensTd);
    tr.appendChild(costCell(d));
    return tr;
  }));
}

// What today cost so far, held against [costs] daily_budget when there is one.
function drawSpend(spent, budget) {
  const box = $("#today-cost");
  const nothing = !spent || (spent.cost === null && !spent.unpriced);
  if (nothing && (budget === null || budget === undefined)) { box.hidden = true; return; }
  const over = budget !== null && budget !== undefined && !nothing && spent.cost !== null && spent.cost > budget;
  let text = "Today: " + (nothing ? "nothing spent yet" : costText(spent));
  if (over) text += `, over the ${money(budget)} daily budget`;
  else if (nothing && budget !== null && budget !== undefined) text += `; daily budget ${money(budget)}`;
  else if (budget !== null && budget !== undefined) text += `${spent.unpriced ? ", " : " "}of the ${money(budget)} daily budget`;
  box.textContent = text;
  box.className = over ? "over" : "";
  box.title = over ? "today's cost is past [costs] daily_budget" : "";
  box.hidden = false;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawChart(days) {
  const chart = $("#chart");
  const W = 420, H = 170, left = 34, bottom = 22, top = 10;
  const plotH = H - bottom - top;
  const max = Math.max(1, ...days.map((d) => d.requests));
  const parts = [svg("line", { x1: left, y1: H - bottom, x2: W - 4, y2: H - bottom, class: "axis" })];
  parts.push(svg("text", { x: left - 6, y: top + 4, "text-anchor": "end" }, String(max)));
  parts.push(svg("text", { x: left - 6, y: H - bottom, "text-anchor": "end" }, "0"));
  const slot = (W - left - 8) / Math.max(1, days.length);
  days.forEach((d, i) => {
    const x = left + 4 + i * slot;
    const w = Math.max(4, slot - 10);
    const okH = ((d.requests - d.errors) / max) * plotH;
    const badH = (d.errors / max) * plotH;
    const g = svg("g", {});
    g.appendChild(svg("title", {}, `${d.date}: ${d.requests} requests, ${d.errors} failed, ${d.tokens.toLocaleString()} tokens, cost ${costText(d)}`));
    g.appendChild(svg("rect", { x, y: H - bottom - okH, width: w, height: Math.max(0, okH), class: "bar", rx: 2 }));
    g.appendChild(svg("rect", { x, y: H - bottom - okH - badH, width: w, height: Math.max(0, badH), class: "bar bad", rx: 2 }));
    const label = new Date(d.date + "T12:00:00").toLocaleDateString(undefined, { weekday: "short" });
    g.appendChild(svg("text", { x: x + w / 2, y: H - 6, "text-anchor": "middle" }, label));
    parts.push(g);
  });
  chart.replaceChildren(...parts);
}

// ---------------------------------------------------------------- detail

function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
}

async function showDetail(uid) {
  const resp = await api(`${API}/logs/${encodeURIComponent(uid)}`);
  if (!resp.ok) return;
  const r = await resp.json();
  const fields = [
    ["Time", new Date(r.time * 1000).toLocaleString()],
    ["Client model", r.client_model || "–"],
    ["Provider", r.provider || "–"],
    ["Upstream model", r.upstream_model || "–"],
    ["Routed by", r.rule || "–"],
    ["Endpoint", r.endpoint],
    ["Upstream URL", r.upstream_url || "–"],
    ["Stream", r.stream ? "yes" : "no"],
    ["Status", String(r.status)],
    ["First byte", ms(r.ttfb_ms)],
    ["Duration", ms(r.duration_ms)],
    ["Tokens in / out", tokens(r) + (r.tokens_estimated ? " (" + ESTIMATED + ")" : "")],
  ];
  if (r.cached_tokens !== null && r.cached_tokens !== undefined) fields.push(["Cached tokens", num(r.cached_tokens) + " of the prompt"]);
  if (r.reasoning_tokens !== null && r.reasoning_tokens !== undefined) fields.push(["Reasoning tokens", num(r.reasoning_tokens)]);
  if (r.cost !== null && r.cost !== undefined) {
    fields.push(["Cost", (r.tokens_estimated ? "~" : "") + money(r.cost) + (r.tokens_estimated ? " (from estimated token counts)" : "")]);
  } else if (r.prompt_tokens !== null || r.completion_tokens !== null) {
    fields.push(["Cost", "unknown (no price is known for this model; not $0)"]);
  }
  if (r.key_label) fields.push(["Key", r.key_label]);  // its label: a key itself never reaches the page
  fields.push(["Error", r.error || "–"]);
  const dl = $("#detail-fields");
  dl.replaceChildren();
  for (const [k, v] of fields) { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v)); }
  const attempts = r.attempts || [];
  $("#detail-attempts-title").hidden = attempts.length === 0;
  $("#detail-attempts").replaceChildren(...attempts.map((a) => el("li",
    `${a.provider} / ${a.model}${a.key ? ` (key ${a.key})` : ""}: ${a.status === null ? "skipped" : a.status}` +
    (a.ms ? ` in ${ms(a.ms)}` : "") + (a.error ? ` — ${a.error}` : ""))));
  const skipped = r.keys_skipped || [];
  $("#detail-skipped-title").hidden = skipped.length === 0;
  $("#detail-skipped").replaceChildren(...skipped.map((t) => el("li", t)));
  const rewrites = r.rewrites.length ? r.rewrites : ["nothing"];
  $("#detail-rewrites").replaceChildren(...rewrites.map((t) => el("li", t)));
  $("#detail-body-title").hidden = !r.error_body;
  $("#detail-body").hidden = !r.error_body;
  $("#detail-body").textContent = pretty(r.error_body || "");
  $("#detail").hidden = false;
}

// ---------------------------------------------------------------- actions

function notice(text, ok) {
  const n = $("#notice");
  n.textContent = text;
  n.className = ok ? "" : "bad";
  n.hidden = false;
}

async function runAction(name) {
  try {
    const resp = await api(`${API}/actions/${name}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    const data = await resp.json();
    if (data.error) notice(data.error.message, false);
    else notice(data.message, data.ok);
  } catch (e) {
    notice("trayproxy did not answer: " + e, false);
  }
  loadStatus();
  loadKeys();
}

async function copyUrl() {
  const url = $("#base-url").textContent;
  try {
    await navigator.clipboard.writeText(url);
    notice(url + " is on the clipboard", true);
  } catch (e) {
    const range = document.createRange();
    range.selectNodeContents($("#base-url"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    notice("Press Ctrl+C (⌘C) to copy " + url, true);
  }
}

// A client's set-up, made by trayproxy, on the clipboard (the same as `trayproxy <command>`).
async function copySetup(command, done) {
  try {
    const text = await (await api(`${API}/${command}`)).text();
    await navigator.clipboard.writeText(text);
    notice(done, true);
  } catch (e) {
    notice(`Could not copy; run \`trayproxy ${command}\` instead.`, false);
  }
}

const copyContinue = () => copySetup(
  "continue-config", "A Continue config is on the clipboard: paste its models into ~/.continue/config.yaml.");
const copyCodex = () => copySetup(
  "codex", "A Codex config is on the clipboard: paste it into ~/.codex/config.toml.");
const copyClaude = () => copySetup(
  "claude-code", "Claude Code's settings are on the clipboard: paste them in a terminal, then run claude.");

async function checkMappings() {
  const button = $("#check-mappings");
  button.disabled = true;
  button.textContent = "Checking…";
  try {
    const resp = await api(`${API}/doctor`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    const report = await resp.json();
    if (report.error) throw new Error(report.error.message);
    $("#health-providers").replaceChildren(...report.providers.map((p) =>
      el("li", `${p.name}: ${p.status} — ${p.detail}`, p.status === "ok" ? "good" : "bad")));
    $("#health-table tbody").replaceChildren(...report.mappings.map((m) => {
      const tr = el("tr");
      tr.append(el("td", m.id, "model"), el("td", `${m.provider} / ${m.model}`, "model"),
        el("td", m.status, "status " + (m.status === "ok" ? "good" : "bad")), el("td", m.detail));
      return tr;
    }));
    $("#health-when").textContent = "checked " + new Date().toLocaleTimeString();
    $("#health").hidden = false;
    const bad = report.mappings.filter((m) => m.status !== "ok").length;
    notice(bad ? `${bad} mapping(s) need attention: see Mapping health.` : "Every mapping is served by its provider.", !bad);
  } catch (e) {
    notice("The check failed: " + e.message, false);
  } finally {
    button.disabled = false;
    button.textContent = "Check mappings";
  }
}

// ---------------------------------------------------------------- keys (write-only)

function keyForm(p) {
  const form = el("form");
  const input = el("input");
  input.type = "password";
  input.autocomplete = "off";
  input.spellcheck = false;
  input.name = "key";
  input.placeholder = p.needs_key ? "paste the key" : "replace the key";
  input.setAttribute("aria-label", "Key for " + p.name);
  const button = el("button", "Store");
  button.type = "submit";
  form.append(input, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!input.value.trim()) return;
    button.disabled = true;
    try {
      const resp = await api(`${API}/keys/${encodeURIComponent(p.name)}`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ key: input.value }),
      });
      const data = await resp.json();
      if (data.error) notice(data.error.message, false);
      else notice(data.message, data.ok);
    } catch (e) {
      notice("trayproxy did not answer: " + e, false);
    } finally {
      input.value = "";  // the key leaves the page as soon as it is sent
      button.disabled = false;
    }
    loadKeys();
  });
  return form;
}

const KEY_WORDS = { ready: "ready", missing: "not set", rejected: "rejected", refused: "refused for some models", cooling: "cooling down" };

// Where the key comes from, and with several keys (or one that is not ready) each key by its
// label: ready, cooling down until when, rejected and why. Never a key's value.
function keyStates(p) {
  const cell = el("td", p.key);
  const keys = p.keys || [];
  if (keys.length < 2 && keys.every((k) => k.state === "ready")) return cell;
  const list = el("ul", null, "key-states");
  for (const k of keys) {
    let text = `${k.label}: ${KEY_WORDS[k.state] || k.state}`;
    if (k.state === "cooling") {
      const models = Object.keys(k.models || {});
      text += " until " + new Date(k.until * 1000).toLocaleTimeString();
      if (models.length) text += " (" + models.join(", ") + ")";
    }
    if ((k.state === "rejected" || k.state === "refused") && k.why) text += " (" + k.why + ")";
    const item = el("li", text, "key-" + k.state);
    item.dataset.label = k.label;
    list.appendChild(item);
  }
  cell.appendChild(list);
  return cell;
}

let keysShown = false;
let keysTimer = null;
async function loadKeys() {
  try {
    const data = await (await api(`${API}/keys`)).json();
    const rows = data.providers.map((p) => {
      const tr = el("tr");
      tr.dataset.provider = p.name;
      tr.append(el("td", p.name, "model"), keyStates(p));
      tr.appendChild(el("td", p.state, "state " + (p.needs_key ? "bad" : "good")));
      const cell = el("td");
      if (p.keychain_entry) cell.appendChild(keyForm(p));
      else { cell.textContent = p.note; cell.className = "note"; }
      tr.appendChild(cell);
      return tr;
    });
    $("#keys-table tbody").replaceChildren(...rows);
    const lacking = data.providers.filter((p) => p.needs_key).length;
    const state = $("#keys-state");
    state.textContent = lacking ? `${lacking} provider${lacking === 1 ? " needs" : "s need"} a key` : "every provider has what it needs";
    state.className = lacking ? "bad" : "";
    // open when a key is missing; folded away once every provider has what it needs
    if (!keysShown || lacking) $("#keys-details").open = lacking > 0;
    keysShown = true;
    // a cooling key becomes ready again on its own: look again while one cools
    const cooling = data.providers.some((p) => (p.keys || []).some((k) => k.state === "cooling"));
    clearTimeout(keysTimer);
    if (cooling) keysTimer = setTimeout(loadKeys, 5000);
  } catch (e) { /* the rest of the page still works */ }
}

async function loadStatus() {
  try {
    const s = await (await api(`${API}/status`)).json();
    $("#base-url").textContent = s.base_url;
    $("#model-count").textContent = s.models + (s.models === 1 ? " model" : " models");
    for (const p of Object.keys(s.providers)) state.providers.add(p);
    const models = await (await api("/v1/models")).json();
    for (const m of models.data) state.models.add(m.id);
    fillSelects();
    if (s.history && s.history.problem) notice("Routing history: " + s.history.problem, false);
    const canToggle = (s.actions || []).includes("toggle_autostart");
    $("#autostart-box").hidden = !canToggle;
    $("#autostart").checked = Boolean(s.autostart);
    for (const b of document.querySelectorAll("button[data-action]")) {
      b.hidden = !(s.actions || []).includes(b.dataset.action);
    }
  } catch (e) { /* the table still works */ }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#copy-url").addEventListener("click", copyUrl);
  $("#copy-continue").addEventListener("click", copyContinue);
  $("#copy-claude").addEventListener("click", copyClaude);
  $("#copy-codex").addEventListener("click", copyCodex);
  $("#check-mappings").addEventListener("click", checkMappings);
  $("#autostart").addEventListener("change", () => runAction("toggle_autostart"));
  for (const b of document.querySelectorAll("button[data-action]")) {
    b.addEventListener("click", () => {
      if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
      runAction(b.dataset.action);
    });
  }
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => {
      state.period = tab.dataset.period;
      for (const t of document.querySelectorAll(".tabs button")) t.setAttribute("aria-selected", String(t === tab));
      renderUsage();
    });
  }
  $("#filters").addEventListener("change", (event) => {
    state.filters[event.target.name] = event.target.value;
    loadRows();
  });
  $("#detail-close").addEventListener("click", () => { $("#detail").hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("#detail").hidden = true; });
  loadStatus();
  loadKeys();
  loadRows().finally(connect);
  loadUsage();
});
