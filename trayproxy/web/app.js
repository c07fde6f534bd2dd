// trayproxy's routing-log page. Everything that comes from requests is set with
// textContent, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function ms(v) {
  if (v === null || v === undefined) return "–";
  return v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms";
}

function tokens(r) {
  if (r.prompt_tokens === null && r.completion_tokens === null) return "–";
  const f = (v) => (v === null ? "?" : v.toLocaleString());
  return f(r.prompt_tokens) + " / " + f(r.completion_tokens);
}

function row(r) {
  const tr = document.createElement("tr");
  tr.appendChild(cell(new Date(r.time * 1000).toLocaleTimeString()));
  tr.appendChild(cell(r.client_model || "–", "model"));
  const target = cell(r.provider ? r.provider + " / " : "–", "model");
  if (r.upstream_model) {
    const sub = document.createElement("span");
    sub.className = "sub";
    sub.textContent = r.upstream_model;
    target.appendChild(sub);
  }
  tr.appendChild(target);
  tr.appendChild(cell(r.endpoint));
  tr.appendChild(cell(r.stream ? "yes" : "no"));
  tr.appendChild(cell(String(r.status), "status s" + String(r.status)[0]));
  tr.appendChild(cell(ms(r.ttfb_ms), "num"));
  tr.appendChild(cell(ms(r.duration_ms), "num"));
  tr.appendChild(cell(tokens(r), "num"));
  tr.appendChild(cell(r.error || "", "err"));
  return tr;
}

async function refresh() {
  try {
    const resp = await fetch("/_trayproxy/api/logs?limit=200", { cache: "no-store" });
    const data = await resp.json();
    const body = $("#log tbody");
    body.replaceChildren(...data.data.map(row));
    $("#empty").hidden = data.data.length > 0;
    $("#live").textContent = "live";
    $("#live").className = "";
  } catch (e) {
    $("#live").textContent = "trayproxy is not answering";
    $("#live").className = "off";
  }
}

function notice(text, ok) {
  const n = $("#notice");
  n.textContent = text;
  n.className = ok ? "" : "bad";
  n.hidden = false;
}

async function runAction(name) {
  try {
    const resp = await fetch("/_trayproxy/api/actions/" + name, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    const data = await resp.json();
    if (data.error) notice(data.error.message, false);
    else notice(data.message, data.ok);
  } catch (e) {
    notice("trayproxy did not answer: " + e, false);
  }
  refresh();
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
    notice("Select and copy: " + url, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#copy-url").addEventListener("click", copyUrl);
  for (const b of document.querySelectorAll("button[data-action]")) {
    b.addEventListener("click", () => runAction(b.dataset.action));
  }
  refresh();
  setInterval(refresh, 2000);
});
