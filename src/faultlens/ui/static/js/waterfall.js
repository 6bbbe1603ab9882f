// The trace waterfall, drawn in the browser from GET /api/v1/traces/{id}.
//
// Rows are virtualised: only the rows in view (and a margin) are in the DOM, so a trace of
// 10,000 spans scrolls like one of 10. The tree is built once; folding a subtree rebuilds
// the list of visible rows (one pass). The critical path is the chain of spans that decided
// the trace's end: from a span, the child that ended last (before the parent's cursor),
// then the child that ended last before that one started, and so on, recursively.
"use strict";

(() => {
  const ROW = 24;
  const OVERSCAN = 12;
  const root = document.getElementById("waterfall");
  const traceId = root.dataset.traceId;
  const { duration, escape, serviceColour, localRfc3339, getJson } = faultlens;

  const state = { spans: [], rows: [], collapsed: new Set(), critical: new Set(), selected: null, t0: 0, total: 1 };
  window.faultlensWaterfall = state;  // for the browser tests and the curious

  function buildTree(spans) {
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    for (const s of spans) {
      s.children = [];
      s.start = s.start_time_unix_nano;
      s.end = s.end_time_unix_nano;
    }
    const roots = [];
    for (const s of spans) {
      const parent = s.parent_span_id && byId.get(s.parent_span_id);
      if (parent && parent !== s) parent.children.push(s); else roots.push(s);
    }
    // Spans in a parent cycle (bad data: A's parent is B, B's is A) are reached from no
    // root: cut each cycle at its earliest span, which becomes a root, so every span shows.
    const reached = new Set();
    const walk = (from) => {
      const stack = [from];
      while (stack.length) {
        const s = stack.pop();
        if (reached.has(s)) continue;
        reached.add(s);
        stack.push(...s.children);
      }
    };
    roots.forEach(walk);
    for (const s of spans.slice().sort((a, b) => a.start - b.start)) {
      if (reached.has(s)) continue;
      const parent = byId.get(s.parent_span_id);
      if (parent) parent.children = parent.children.filter((c) => c !== s);
      roots.push(s);
      walk(s);
    }
    for (const s of spans) s.children.sort((a, b) => a.start - b.start);
    roots.sort((a, b) => a.start - b.start);
    return { byId, roots };
  }

  function criticalPath(roots) {
    const onPath = new Set();
    const stack = roots.length ? [roots.reduce((a, b) => (b.end > a.end ? b : a))] : [];
    while (stack.length) {
      const s = stack.pop();
      onPath.add(s.span_id);
      let cursor = s.end;
      const kids = s.children.slice().sort((a, b) => b.end - a.end);
      for (const k of kids) {
        if (k.end <= cursor || cursor === s.end) {
          stack.push(k);
          cursor = Math.min(cursor, k.start);
        }
        if (cursor <= s.start) break;
      }
    }
    return onPath;
  }

  function visibleRows(roots) {
    const rows = [];
    const stack = roots.slice().reverse().map((s) => [s, 0]);
    while (stack.length) {
      const [s, depth] = stack.pop();
      rows.push({ span: s, depth });
      if (!state.collapsed.has(s.span_id)) {
        for (let i = s.children.length - 1; i >= 0; i--) stack.push([s.children[i], depth + 1]);
      }
    }
    return rows;
  }

  const scroll = document.getElementById("wf-scroll");
  const spacer = document.getElementById("wf-spacer");
  const rowsEl = document.getElementById("wf-rows");

  function renderRows() {
    const first = Math.max(0, Math.floor(scroll.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(state.rows.length, Math.ceil((scroll.scrollTop + scroll.clientHeight) / ROW) + OVERSCAN);
    const html = [];
    for (let i = first; i < last; i++) {
      const { span: s, depth } = state.rows[i];
      const left = ((s.start - state.t0) / state.total) * 100;
      const width = Math.max(0.15, ((s.end - s.start) / state.total) * 100);
      const colour = serviceColour(s.service || "?");
      const classes = ["wf-row"];
      if (state.critical.has(s.span_id)) classes.push("critical");
      if (s.status_code === "ERROR") classes.push("error");
      if (state.selected === s.span_id) classes.push("selected");
      const toggle = s.children.length
        ? `<button class="wf-toggle" data-toggle="${s.span_id}" title="${s.children.length} children">${state.collapsed.has(s.span_id) ? "▸" : "▾"}</button>`
        : '<span class="wf-leaf"></span>';
      const labelLeft = left > 70 ? `right:${100 - left}%` : `left:calc(${left + width}% + 4px)`;
      html.push(
        `<div class="${classes.join(" ")}" style="top:${i * ROW}px" data-span-id="${s.span_id}">` +
        `<div class="wf-name" style="padding-left:${4 + depth * 14}px">${toggle}` +
        `<span class="wf-svc" style="background:${colour}"></span><span class="wf-label"><b>${escape(s.service || "?")}</b> ${escape(s.name)}</span></div>` +
        `<div class="wf-timeline"><div class="wf-bar" style="left:${left}%;width:${width}%;background:${colour}"></div>` +
        `<span class="wf-dur" style="${labelLeft}">${duration(s.end_time_unix_nano - s.start_time_unix_nano)}</span></div></div>`);
    }
    rowsEl.innerHTML = html.join("");
  }

  function relayout() {
    state.rows = visibleRows(state.roots);
    spacer.style.height = `${state.rows.length * ROW}px`;
    renderRows();
  }

  function ticks() {
    const el = document.getElementById("wf-ticks");
    const parts = [];
    for (let i = 0; i <= 4; i++) {
      parts.push(`<span style="left:${i * 25}%">${duration((state.total * i) / 4)}</span>`);
    }
    el.innerHTML = parts.join("");
  }

  function kvTable(obj) {
    const keys = Object.keys(obj || {}).sort();
    if (!keys.length) return '<p class="muted">none</p>';
    return `<table class="kv">${keys.map((k) => `<tr><th>${escape(k)}</th><td>${escape(typeof obj[k] === "object" ? JSON.stringify(obj[k]) : obj[k])}</td></tr>`).join("")}</table>`;
  }

  function when(ns) {
    const d = new Date(ns / 1e6);
    return `<time title="${d.toISOString()}">${localRfc3339(d)}</time>`;
  }

  function showDetails(s, remember = true) {
    state.selected = s.span_id;
    if (remember) history.replaceState(null, "", `#span-${s.span_id}`);  // a shareable URL of this span
    renderRows();
    const events = s.events.map((e) => {
      const a = e.attributes || {};
      const stack = a["exception.stacktrace"] ? `<pre class="stack">${escape(a["exception.stacktrace"])}</pre>` : "";
      const rest = Object.fromEntries(Object.entries(a).filter(([k]) => k !== "exception.stacktrace"));
      return `<li><b>${escape(e.name)}</b> at +${duration(e.time_unix_nano - s.start)}${kvTable(rest)}${stack}</li>`;
    }).join("");
    const logs = state.logs.filter((r) => r.span_id === s.span_id);
    document.getElementById("span-details").innerHTML =
      `<h3><span class="wf-svc" style="background:${serviceColour(s.service || "?")}"></span>${escape(s.service || "?")} · ${escape(s.name)}</h3>` +
      `<table class="kv"><tr><th>duration</th><td>${duration(s.duration_ns)}</td></tr>` +
      `<tr><th>start</th><td>${when(s.start)} (+${duration(s.start - state.t0)})</td></tr>` +
      `<tr><th>kind</th><td>${escape(s.kind)}</td></tr>` +
      `<tr><th>status</th><td class="${s.status_code === "ERROR" ? "bad" : ""}">${escape(s.status_code)}${s.status_message ? `: ${escape(s.status_message)}` : ""}</td></tr>` +
      `<tr><th>span id</th><td class="mono">${s.span_id}</td></tr>` +
      `<tr><th>parent</th><td class="mono">${s.parent_span_id || "none (root)"}</td></tr>` +
      `<tr><th>critical path</th><td>${state.critical.has(s.span_id) ? "yes" : "no"}</td></tr></table>` +
      `<h4>Attributes</h4>${kvTable(s.attributes)}` +
      `<h4>Events</h4>${events ? `<ul class="events">${events}</ul>` : '<p class="muted">none</p>'}` +
      (s.links.length ? `<h4>Links</h4><ul>${s.links.map((l) => `<li><a class="mono" href="/traces/${l.trace_id}">${l.trace_id.slice(0, 16)}</a> span ${l.span_id}</li>`).join("")}</ul>` : "") +
      `<h4>Logs of this span</h4>${logs.length ? logs.map((r) => `<div class="log-line">${escape(r.severity_text)} ${escape(r.body)}</div>`).join("") : '<p class="muted">none</p>'}` +
      `<h4>Resource</h4>${kvTable(s.resource_attributes)}`;
  }

  function select(spanId) {
    const s = state.byId.get(spanId);
    if (!s) return;
    // unfold the ancestors so the span is in view
    let p = s.parent_span_id && state.byId.get(s.parent_span_id);
    while (p) { state.collapsed.delete(p.span_id); p = p.parent_span_id && state.byId.get(p.parent_span_id); }
    relayout();
    const i = state.rows.findIndex((r) => r.span.span_id === spanId);
    if (i >= 0 && (i * ROW < scroll.scrollTop || i * ROW > scroll.scrollTop + scroll.clientHeight - ROW)) {
      scroll.scrollTop = Math.max(0, i * ROW - scroll.clientHeight / 3);
    }
    showDetails(s);
  }

  function renderLogs(logs) {
    const el = document.getElementById("trace-logs");
    if (!logs.length) { el.innerHTML = '<p class="muted">No log record carries this trace id.</p>'; return; }
    el.innerHTML = `<table class="list" id="trace-log-list"><thead><tr><th>time</th><th>severity</th><th>service</th><th>body</th><th>span</th></tr></thead><tbody>${
      logs.map((r) => `<tr><td>${when(r.time_unix_nano)}</td><td>${escape(r.severity_text || r.severity_number)}</td><td>${escape(r.service || "")}</td>` +
        `<td class="body">${escape(r.body)}</td><td>${r.span_id ? `<a href="#" class="mono" data-select="${r.span_id}">${r.span_id.slice(0, 8)}</a>` : ""}</td></tr>`).join("")
    }</tbody></table>`;
  }

  function operationStats(spans) {
    const m = new Map();
    for (const s of spans) {
      const k = `${s.service || "?"}\u0000${s.name}`;
      const a = m.get(k) || { service: s.service || "?", name: s.name, count: 0, total: 0, errors: 0 };
      a.count += 1; a.total += s.duration_ns; a.errors += s.status_code === "ERROR" ? 1 : 0;
      m.set(k, a);
    }
    return m;
  }

  async function compare(otherId, mine) {
    const el = document.getElementById("compare");
    let other;
    try { other = await getJson(`/api/v1/traces/${encodeURIComponent(otherId)}`); } catch (e) {
      el.innerHTML = `<p class="bad">compare: ${escape(e.message)}</p>`; return;
    }
    const a = operationStats(mine), b = operationStats(other.spans);
    const keys = [...new Set([...a.keys(), ...b.keys()])];
    const rows = keys.map((k) => {
      const x = a.get(k), y = b.get(k);
      const base = x || y;
      const diff = (y ? y.total : 0) - (x ? x.total : 0);
      return { base, x, y, diff };
    }).sort((p, q) => Math.abs(q.diff) - Math.abs(p.diff));
    el.innerHTML = `<h2>Compared with <a class="mono" href="/traces/${other.trace_id}">${other.trace_id}</a></h2>` +
      `<table class="list" id="compare-table"><thead><tr><th>service · operation</th><th>spans here</th><th>spans there</th><th>time here</th><th>time there</th><th>difference</th><th>errors here / there</th></tr></thead><tbody>${
        rows.map(({ base, x, y, diff }) => `<tr class="${!x || !y ? "only" : ""}"><td>${escape(base.service)} · ${escape(base.name)}</td>` +
          `<td class="num">${x ? x.count : "-"}</td><td class="num">${y ? y.count : "-"}</td>` +
          `<td class="num">${x ? duration(x.total) : "-"}</td><td class="num">${y ? duration(y.total) : "-"}</td>` +
          `<td class="num ${diff > 0 ? "bad" : "ok"}">${diff >= 0 ? "+" : "-"}${duration(Math.abs(diff))}</td>` +
          `<td class="num">${x ? x.errors : "-"} / ${y ? y.errors : "-"}</td></tr>`).join("")
      }</tbody></table>`;
  }

  async function load() {
    const summary = document.getElementById("trace-summary");
    let data;
    try { data = await getJson(`/api/v1/traces/${traceId}`); } catch (e) {
      summary.className = "bad";
      summary.textContent = e.status === 404 ? `Trace ${traceId} is not stored (or not yet: the store writes every 2 s).` : `Cannot load the trace: ${e.message}`;
      document.getElementById("trace-logs").innerHTML = "";
      return;
    }
    const { byId, roots } = buildTree(data.spans);
    state.spans = data.spans; state.byId = byId; state.roots = roots; state.logs = data.logs;
    state.t0 = Math.min(...data.spans.map((s) => s.start));
    state.total = Math.max(1, Math.max(...data.spans.map((s) => s.end)) - state.t0);
    state.critical = criticalPath(roots);
    const services = [...new Set(data.spans.map((s) => s.service || "?"))].sort();
    const errors = data.spans.filter((s) => s.status_code === "ERROR").length;
    summary.className = "";
    summary.innerHTML = `<span id="span-count">${data.spans.length}</span> spans · ${duration(state.total)} · ` +
      `${errors ? `<span class="bad">${errors} error span${errors > 1 ? "s" : ""}</span>` : "no error span"} · started ${when(state.t0)} · ` +
      services.map((s) => `<span class="svc" style="border-left-color:${serviceColour(s)}">${escape(s)}</span>`).join(" ") +
      (roots.length > 1 ? ` · <span class="muted">${roots.length} roots (parents not stored)</span>` : "");
    root.style.setProperty("--rows", Math.min(data.spans.length, 28));
    ticks();
    relayout();
    renderLogs(data.logs);
    const linked = window.location.hash.startsWith("#span-") && byId.get(window.location.hash.slice(6));
    if (linked) select(linked.span_id);
    else showDetails(data.spans.find((s) => s.status_code === "ERROR") || roots[0], false);
    root.dataset.loaded = "1";
    performance.mark("waterfall-ready");  // bench/ui.py reads it: the page's ready time
    if (root.dataset.compare) compare(root.dataset.compare, data.spans);
  }

  scroll.addEventListener("scroll", () => window.requestAnimationFrame(renderRows), { passive: true });
  rowsEl.addEventListener("click", (e) => {
    const t = e.target.closest("[data-toggle]");
    if (t) {
      const id = t.dataset.toggle;
      if (state.collapsed.has(id)) state.collapsed.delete(id); else state.collapsed.add(id);
      relayout();
      return;
    }
    const row = e.target.closest("[data-span-id]");
    if (row) showDetails(state.byId.get(row.dataset.spanId));
  });
  document.getElementById("trace-logs").addEventListener("click", (e) => {
    const a = e.target.closest("[data-select]");
    if (a) { e.preventDefault(); select(a.dataset.select); }
  });
  load();
})();
