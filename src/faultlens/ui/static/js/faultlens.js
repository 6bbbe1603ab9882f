// faultlens UI: what every page shares (times in the browser's zone, service colours,
// small charts). Pages are server-rendered; this script only decorates them and draws
// charts from figures the page embeds or from the API's JSON. No build step: plain ES2020.
"use strict";

const faultlens = (() => {
  const pad = (n, w = 2) => String(n).padStart(w, "0");

  // RFC 3339 in the browser's zone: 2026-12-07T01:02:03.456+01:00 (UTC form in the tooltip).
  function localRfc3339(date) {
    const off = -date.getTimezoneOffset();
    const sign = off >= 0 ? "+" : "-";
    const abs = Math.abs(off);
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
      `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
      `${pad(date.getMilliseconds(), 3)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }

  function localiseTimes(root) {
    for (const el of root.querySelectorAll("time[datetime]")) {
      if (el.dataset.localised) continue;
      const utc = el.getAttribute("datetime");
      const date = new Date(utc);
      if (Number.isNaN(date.getTime())) continue;
      el.textContent = localRfc3339(date);
      el.title = utc;
      el.dataset.localised = "1";
    }
  }

  // A stable colour per service name, the same on every page.
  function serviceColour(name) {
    let h = 2166136261;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
    return `hsl(${(h >>> 0) % 360}, 62%, 48%)`;
  }

  function colourServices(root) {
    for (const el of root.querySelectorAll(".svc[data-service]")) {
      el.style.borderLeftColor = serviceColour(el.dataset.service);
    }
  }

  function duration(ns) {
    if (ns === null || ns === undefined || Number.isNaN(ns)) return "-";
    if (ns < 1e3) return `${ns.toFixed(0)} ns`;
    if (ns < 1e6) return `${(ns / 1e3).toFixed(0)} us`;
    if (ns < 1e9) return `${(ns / 1e6).toPrecision(3)} ms`;
    return `${(ns / 1e9).toPrecision(3)} s`;
  }

  function escape(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  async function getJson(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = (await r.json()).detail; } catch (_) { /* not JSON */ }
      const e = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
      e.status = r.status;
      throw e;
    }
    return r.json();
  }

  const tzAxis = (u, splits) => splits.map((s) => {
    const d = new Date(s * 1000);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  });

  function smallChart(el, title, xs, series, yFmt) {
    const box = document.createElement("div");
    box.className = "small-chart";
    box.innerHTML = `<div class="chart-title">${escape(title)}</div>`;
    el.appendChild(box);
    const opts = {
      width: 200, height: 90, legend: { show: false }, cursor: { show: true, points: { show: false } },
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } },
      axes: [{ size: 22, values: tzAxis, font: "10px sans-serif" },
             { size: 42, font: "10px sans-serif", values: (u, v) => v.map(yFmt) }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.colour, width: 1.5, points: { show: xs.length < 3 } }))],
    };
    return new uPlot(opts, [xs, ...series.map((s) => s.values)], box);
  }

  // The overview's RED cards: one service's entry operations, from /api/v1/services/{s}/red.
  async function redCard(card) {
    const target = card.querySelector(".red-charts");
    const service = card.dataset.redService;
    const url = `/api/v1/services/${encodeURIComponent(service)}/red?start=${card.dataset.start}&end=${card.dataset.end}`;
    let body;
    try { body = await getJson(url); } catch (e) { target.innerHTML = `<span class="bad">${escape(e.message)}</span>`; return; }
    let series = body.series.filter((s) => s.kind === "SERVER" || s.kind === "CONSUMER");
    if (!series.length) series = body.series;
    if (!series.length) { target.innerHTML = '<span class="muted">no RED windows in this hour</span>'; return; }
    const step = (body.step_ns || 60e9) / 1e9;
    const at = new Map();
    for (const s of series) {
      for (const p of s.points) {
        const x = p.start_unix_nano / 1e9;
        const acc = at.get(x) || { req: 0, err: 0, p50: 0, p95: 0, p99: 0 };
        acc.req += p.requests; acc.err += p.errors;
        for (const q of ["p50", "p95", "p99"]) {
          const v = Number(p[`${q}_ns`]);
          if (Number.isFinite(v)) acc[q] = Math.max(acc[q], v / 1e6);
        }
        at.set(x, acc);
      }
    }
    const xs = [...at.keys()].sort((a, b) => a - b);
    const col = (f) => xs.map((x) => f(at.get(x)));
    target.innerHTML = "";
    const num = (v) => (v == null ? "" : v >= 100 ? v.toFixed(0) : v.toPrecision(2));
    smallChart(target, "requests/s", xs, [{ label: "req/s", colour: "#2f6fdf", values: col((a) => a.req / step) }], num);
    smallChart(target, "errors/s", xs, [{ label: "err/s", colour: "#d9412b", values: col((a) => a.err / step) }], num);
    smallChart(target, "latency ms p50/p95/p99 (slowest op)", xs, [
      { label: "p50", colour: "#3b9c5a", values: col((a) => a.p50) },
      { label: "p95", colour: "#d9a21b", values: col((a) => a.p95) },
      { label: "p99", colour: "#b0413e", values: col((a) => a.p99) },
    ], num);
    card.dataset.loaded = "1";
  }

  // A service's page: RED of every operation and call it makes, one row of charts each.
  async function serviceRed(el) {
    const url = `/api/v1/services/${encodeURIComponent(el.dataset.service)}/red?start=${el.dataset.start}&end=${el.dataset.end}`;
    let body;
    try { body = await getJson(url); } catch (e) { el.innerHTML = `<p class="bad">${escape(e.message)}</p>`; return; }
    if (!body.series.length) { el.innerHTML = '<p class="muted">No RED windows in this time range.</p>'; el.dataset.loaded = "1"; return; }
    const step = (body.step_ns || 60e9) / 1e9;
    const num = (v) => (v == null ? "" : v >= 100 ? v.toFixed(0) : v.toPrecision(2));
    el.innerHTML = "";
    const order = { SERVER: 0, CONSUMER: 1, INTERNAL: 2, CLIENT: 3, PRODUCER: 4 };
    const sorted = body.series.slice().sort((a, b) => (order[a.kind] ?? 9) - (order[b.kind] ?? 9));
    // The range as one row per operation: the API merges the windows' sketches, so these
    // percentiles are the range's own.
    const summary = document.createElement("table");
    summary.className = "list";
    summary.id = "service-red-summary";
    summary.innerHTML = "<thead><tr><th>kind</th><th>operation</th><th>requests</th><th>errors</th><th>error rate</th><th>p50</th><th>p95</th><th>p99</th></tr></thead><tbody>" +
      sorted.map((s) => { const t = s.total; return `<tr data-operation="${escape(s.operation)}"><td><span class="pill">${escape(s.kind)}</span></td><td>${escape(s.operation)}</td>` +
        `<td class="num">${t.requests}</td><td class="num${t.errors ? " bad" : ""}">${t.errors}</td><td class="num">${(100 * t.error_rate).toFixed(1)}%</td>` +
        `<td class="num">${duration(t.p50_ns)}</td><td class="num">${duration(t.p95_ns)}</td><td class="num">${duration(t.p99_ns)}</td></tr>`; }).join("") + "</tbody>";
    el.appendChild(summary);
    for (const s of sorted) {
      const row = document.createElement("div");
      row.className = "red-row";
      row.dataset.operation = s.operation;
      const total = s.points.reduce((n, p) => n + p.requests, 0);
      const errs = s.points.reduce((n, p) => n + p.errors, 0);
      row.innerHTML = `<h3><span class="pill">${escape(s.kind)}</span> ${escape(s.operation)} <span class="muted small">${total} requests, ${errs} errors, p95 ${duration(s.total.p95_ns)}</span></h3><div class="red-charts"></div>`;
      el.appendChild(row);
      const target = row.querySelector(".red-charts");
      const xs = s.points.map((p) => p.start_unix_nano / 1e9);
      const ms = (k) => s.points.map((p) => { const v = Number(p[k]); return Number.isFinite(v) ? v / 1e6 : null; });
      smallChart(target, "requests/s", xs, [{ label: "req/s", colour: "#2f6fdf", values: s.points.map((p) => p.requests / step) }], num);
      smallChart(target, "errors/s", xs, [{ label: "err/s", colour: "#d9412b", values: s.points.map((p) => p.errors / step) }], num);
      smallChart(target, "latency ms p50/p95/p99", xs, [
        { label: "p50", colour: "#3b9c5a", values: ms("p50_ns") },
        { label: "p95", colour: "#d9a21b", values: ms("p95_ns") },
        { label: "p99", colour: "#b0413e", values: ms("p99_ns") },
      ], num);
    }
    el.dataset.loaded = "1";
  }

  async function serviceEdges(table) {
    const me = table.dataset.service;
    let g;
    try { g = await getJson(`/api/v1/graph?start=${table.dataset.start}&end=${table.dataset.end}`); } catch (e) {
      table.querySelector("tbody").innerHTML = `<tr><td colspan="9" class="bad">${escape(e.message)}</td></tr>`; return;
    }
    const edges = g.edges.filter((e) => e.caller === me || e.callee === me);
    table.querySelector("tbody").innerHTML = edges.length ? edges.map((e) => `<tr><td>${escape(e.caller)}</td><td>${escape(e.callee)}</td><td>${escape(e.kind)}</td>` +
      `<td class="num">${e.calls}</td><td class="num${e.errors ? " bad" : ""}">${e.errors}</td><td class="num">${(100 * e.error_rate).toFixed(1)}%</td>` +
      `<td class="num">${duration(e.latency_p50_ns)}</td><td class="num">${duration(e.latency_p95_ns)}</td><td class="num">${duration(e.latency_p99_ns)}</td></tr>`).join("")
      : '<tr><td colspan="9" class="muted">no call in this time range</td></tr>';
    table.dataset.loaded = "1";
  }

  // The trace search's scatter: duration over time, error traces in red; a click opens one.
  function traceScatter(root) {
    const data = root.querySelector("#trace-points");
    const el = root.querySelector("#trace-scatter");
    if (!data || !el || el.dataset.drawn) return;
    el.dataset.drawn = "1";
    const points = JSON.parse(data.textContent).sort((a, b) => a[0] - b[0]);
    const xs = points.map((p) => p[0]);
    const ok = points.map((p) => (p[2] ? null : p[1]));
    const bad = points.map((p) => (p[2] ? p[1] : null));
    const dot = (colour) => ({ stroke: colour, fill: colour, paths: () => null, points: { show: true, size: 8, fill: colour } });
    const u = new uPlot({
      width: Math.min(1100, el.clientWidth || 900), height: 220, legend: { show: false },
      scales: { x: { time: true }, y: { distr: 3 } },
      axes: [{ space: 90, values: (u, splits) => splits.map((s) => localRfc3339(new Date(s * 1000)).slice(11, 19)) },
             { label: "duration ms", size: 64, values: (u, v) => v.map((x) => (x == null ? "" : x >= 1 ? String(Math.round(x)) : x.toPrecision(1))) }],
      cursor: { points: { show: false } },
      series: [{}, { label: "ok", ...dot("#2f6fdf") }, { label: "error", ...dot("#d9412b") }],
    }, [xs, ok, bad], el);
    u.over.addEventListener("click", () => {
      const i = u.cursor.idx;
      if (i !== null && i !== undefined && points[i]) window.location.href = `/traces/${points[i][3]}`;
    });
    u.over.style.cursor = "pointer";
  }

  function anomalyTimeline(root) {
    const data = root.querySelector("#anomaly-points");
    const el = root.querySelector("#anomaly-timeline");
    if (!data || !el || el.dataset.drawn) return;
    el.dataset.drawn = "1";
    const points = JSON.parse(data.textContent);
    if (!points.length) return;
    const byX = new Map();
    for (const [x, score] of points) byX.set(x, Math.max(byX.get(x) || 0, score));
    const xs = [...byX.keys()].sort((a, b) => a - b);
    const count = new Map();
    for (const [x] of points) count.set(x, (count.get(x) || 0) + 1);
    new uPlot({
      width: Math.min(1100, el.clientWidth || 900), height: 160,
      scales: { x: { time: true } },
      axes: [{ values: (u, splits) => splits.map((s) => localRfc3339(new Date(s * 1000)).slice(11, 19)) }, { label: "score / count" }],
      series: [{}, { label: "highest anomaly score", stroke: "#d9412b", width: 2 },
               { label: "anomalies in the window", stroke: "#2f6fdf", width: 1, paths: uPlot.paths.bars({ size: [0.4] }) }],
    }, [xs, xs.map((x) => byX.get(x)), xs.map((x) => count.get(x))], el);
  }

  function errorCounts(root) {
    const data = root.querySelector("#error-count-points");
    const el = root.querySelector("#error-counts");
    if (!data || !el || el.dataset.drawn) return;
    el.dataset.drawn = "1";
    const points = JSON.parse(data.textContent);
    if (!points.length) return;
    new uPlot({
      width: Math.min(1100, el.clientWidth || 900), height: 160, legend: { show: false },
      scales: { x: { time: true } },
      axes: [{ values: (u, splits) => splits.map((s) => localRfc3339(new Date(s * 1000)).slice(11, 19)) }, { label: "errors" }],
      series: [{}, { label: "errors", stroke: "#d9412b", fill: "rgba(217,65,43,0.25)", paths: uPlot.paths.bars({ size: [0.8] }) }],
    }, [points.map((p) => p[0]), points.map((p) => p[1])], el);
  }

  // The trace list: tick two traces, then open the first compared with the second.
  function comparePicker(root) {
    const button = root.querySelector("#compare-picked");
    if (!button || button.dataset.wired) return;
    button.dataset.wired = "1";
    const picked = () => [...root.querySelectorAll(".compare-pick:checked")].map((c) => c.value);
    root.addEventListener("change", (e) => {
      if (e.target.classList && e.target.classList.contains("compare-pick")) button.disabled = picked().length !== 2;
    });
    button.addEventListener("click", () => {
      const [a, b] = picked();
      if (a && b) window.location.href = `/traces/${a}?compare=${b}`;
    });
  }

  // The trace search's attribute picker: a key and a value (suggested from the newest spans
  // of the service) become one more `key=value` in the attributes field.
  function attrPicker(root) {
    const box = root.querySelector("#attr-pick");
    const field = document.getElementById("attrs");
    if (!box || !field || box.dataset.wired) return;
    box.dataset.wired = "1";
    const key = box.querySelector("#attr-key");
    const value = box.querySelector("#attr-value");
    const quote = (v) => (v === "" || /[\s"'\\=]/.test(v) ? `"${v.replace(/(["\\])/g, "\\$1")}"` : v);
    const add = () => {
      const k = key.value.trim();
      if (!k) { key.focus(); return; }
      const pair = `${/[\s"'\\=]/.test(k) ? quote(k) : k}=${quote(value.value)}`;
      field.value = field.value.trim() ? `${field.value.trim()} ${pair}` : pair;
      key.value = ""; value.value = "";
    };
    box.querySelector("#attr-add").addEventListener("click", add);
    for (const input of [key, value]) {
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); add(); } });
    }
  }

  function init(root) {
    attrPicker(root);
    errorCounts(root);
    comparePicker(root);
    localiseTimes(root);
    colourServices(root);
    traceScatter(root);
    anomalyTimeline(root);
    for (const card of root.querySelectorAll("[data-red-service]")) if (!card.dataset.loaded) redCard(card);
    const red = root.querySelector("#service-red");
    if (red && !red.dataset.loaded) serviceRed(red);
    const edges = root.querySelector("#service-edges");
    if (edges && !edges.dataset.loaded) serviceEdges(edges);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const tz = document.getElementById("tz-name");
    if (tz) tz.textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
    init(document);
  });
  document.addEventListener("htmx:afterSettle", (e) => init(e.target));

  return { localRfc3339, localiseTimes, serviceColour, duration, escape, getJson, init };
})();
