// The service map, drawn with cytoscape.js from GET /api/v1/graph?start=&end=.
// Nodes are services (and the databases, external hosts and brokers they call); an edge
// carries its calls, error rate and callee latency; edges with errors are red and thicker
// with more calls. ?service= highlights one service and its neighbours.
"use strict";

(() => {
  const el = document.getElementById("map");
  if (!el) return;
  const { duration, escape, serviceColour, getJson } = faultlens;
  const SHAPES = { service: "round-rectangle", database: "barrel", external: "diamond", messaging: "hexagon" };

  async function load() {
    let g;
    try { g = await getJson(`/api/v1/graph?start=${el.dataset.start}&end=${el.dataset.end}`); } catch (e) {
      el.innerHTML = `<p class="bad">Cannot load the graph: ${escape(e.message)}</p>`;
      return;
    }
    if (!g.nodes.length) { el.innerHTML = '<p class="muted">No call in this time range.</p>'; el.classList.add("empty"); return; }
    const maxCalls = Math.max(1, ...g.edges.map((e) => e.calls));
    const elements = [
      ...g.nodes.map((n) => ({ data: { id: n.name, label: n.name, kind: n.kind, colour: n.kind === "service" ? serviceColour(n.name) : "#888" } })),
      ...g.edges.map((e, i) => ({
        data: {
          id: `e${i}`, source: e.caller, target: e.callee, kind: e.kind, calls: e.calls, errorRate: e.error_rate,
          width: 1.5 + 5 * Math.log1p(e.calls) / Math.log1p(maxCalls),
          colour: e.errors ? "#d9412b" : "#8a96a8",
          label: `${e.calls} · ${(100 * e.error_rate).toFixed(1)}% err · p95 ${duration(e.latency_p95_ns)} / p99 ${duration(e.latency_p99_ns)}`,
        },
      })),
    ];
    const cy = cytoscape({
      container: el, elements,
      layout: { name: "breadthfirst", directed: true, spacingFactor: 1.25, padding: 20 },
      style: [
        { selector: "node", style: { shape: (n) => SHAPES[n.data("kind")] || "ellipse", "background-color": "data(colour)", label: "data(label)",
          color: "#1d2430", "font-size": 12, "text-valign": "bottom", "text-margin-y": 4, width: 34, height: 24 } },
        { selector: "edge", style: { width: "data(width)", "line-color": "data(colour)", "target-arrow-color": "data(colour)",
          "target-arrow-shape": "triangle", "curve-style": "bezier", label: "data(label)", "font-size": 9, color: "#444",
          "text-background-color": "#fff", "text-background-opacity": 0.85, "text-background-padding": 2, "text-rotation": "autorotate" } },
        { selector: ".faded", style: { opacity: 0.15 } },
        { selector: ".focus", style: { "border-width": 3, "border-color": "#1d2430" } },
        { selector: "edge.chain", style: { "line-color": "#e8871e", "target-arrow-color": "#e8871e", width: 8, opacity: 1 } },
        { selector: "node.root", style: { "border-width": 4, "border-color": "#c73a25", opacity: 1 } },
      ],
    });
    window.faultlensMap = cy;
    const focus = el.dataset.focus;
    if (focus && cy.getElementById(focus).nonempty()) {
      const n = cy.getElementById(focus);
      cy.elements().addClass("faded");
      n.closedNeighborhood().removeClass("faded");
      n.addClass("focus");
    }
    cy.on("tap", "node", (evt) => {
      if (evt.target.data("kind") === "service") window.location.href = `/services/${encodeURIComponent(evt.target.id())}`;
    });
    if (el.dataset.incident) await drawChains(cy, el.dataset.incident);
    const tbody = document.querySelector("#edges tbody");
    tbody.innerHTML = g.edges.map((e) => `<tr data-caller="${escape(e.caller)}" data-callee="${escape(e.callee)}">` +
      `<td>${escape(e.caller)}</td><td>${escape(e.callee)}</td><td>${escape(e.kind)}</td><td class="num">${e.calls}</td>` +
      `<td class="num${e.errors ? " bad" : ""}">${e.errors}</td><td class="num">${(100 * e.error_rate).toFixed(1)}%</td>` +
      `<td class="num">${duration(e.latency_p50_ns)}</td><td class="num">${duration(e.latency_p95_ns)}</td><td class="num">${duration(e.latency_p99_ns)}</td></tr>`).join("");
    el.dataset.loaded = "1";
  }
  // An incident's propagation chains (GET /api/v1/incidents/{id}/rca ranks it now): the
  // edges that carried the fault are drawn thick and orange, each chain listed in words.
  async function drawChains(cy, incident) {
    const box = document.getElementById("chains");
    let rca;
    try { rca = await getJson(`/api/v1/incidents/${encodeURIComponent(incident)}/rca`); } catch (e) {
      box.innerHTML = `<p class="bad">Cannot rank incident ${escape(incident)}: ${escape(e.message)}</p>`;
      return;
    }
    const lines = [];
    for (const chain of rca.chains) {
      for (const e of chain.edges) {
        const hit = cy.edges().filter((x) => x.source().id() === e.caller && x.target().id() === e.callee);
        hit.addClass("chain").removeClass("faded");
        hit.connectedNodes().removeClass("faded");
      }
      const why = chain.edges.map((e) => `${escape(e.caller)} → ${escape(e.callee)}: ${escape(e.evidence.join("; "))}`);
      lines.push(`<li><b>${chain.services.map(escape).join(" → ")}</b>${why.length ? ` (${why.join("; ")})` : ""}</li>`);
    }
    for (const rc of rca.root_causes.slice(0, 1)) cy.getElementById(rc.service).addClass("root");
    box.innerHTML = lines.length
      ? `<p>How incident <a href="/incidents/${encodeURIComponent(incident)}">${escape(incident)}</a> spread (orange edges; the most likely root cause is outlined in red):</p><ul id="chain-list">${lines.join("")}</ul>`
      : `<p class="muted">No propagation chain for incident ${escape(incident)}: ${escape(rca.rca_reason)}</p>`;
  }

  load();
})();
