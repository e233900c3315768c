// The sweep explorer: scatter (Pareto front of the two axes highlighted, colour by a third column),
// parallel coordinates of every numeric column with brushing, the selected rows as a table, and a
// clicked row's model / hardware keys and the command that reproduces it. No library, no fetch.
// The rows arrive column by column (sweep_explorer.explorer_payload): a number column is a list, a string
// column its levels and one code per row; `col[name][i]` is row i's value, row objects are built only
// when asked for (graphcostSweep.rows).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("sweep-data").textContent);
  const n = data.n, columns = data.columns, dirs = data.directions, col = {};
  for (const [name, v] of Object.entries(data.table)) {
    col[name] = Array.isArray(v) ? v : v.codes.map((c) => (c < 0 ? null : v.levels[c]));
  }
  const names = Object.keys(col);
  const at = (c, i) => (col[c] ? col[c][i] : undefined);
  let rowObjects = null;
  function rows() {
    if (!rowObjects) rowObjects = Array.from({length: n}, (_, i) => {
      const r = {};
      for (const c of names) r[c] = col[c][i];
      return r;
    });
    return rowObjects;
  }
  const $ = (id) => document.getElementById(id);
  const brushes = {};               // column -> [lo, hi]
  let selected = Array.from({length: n}, (_, i) => i), front = [], drawnPoints = 0;
  const state = {x: data.axes[0], y: data.axes[1], colour: data.axes[2]};

  const num = (v) => typeof v === "number" && isFinite(v);
  const fmt = (v) => num(v) ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : (v === null || v === undefined ? "" : String(v));
  const extents = {};
  function extent(c) {
    if (extents[c]) return extents[c];
    let lo = Infinity, hi = -Infinity;
    for (const v of col[c] || []) if (num(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    return (extents[c] = lo === Infinity ? [0, 1] : lo === hi ? [lo - 0.5, hi + 0.5] : [lo, hi]);
  }
  function colourOf(t) {          // dark blue -> teal -> yellow
    t = Math.max(0, Math.min(1, t));
    const a = [68, 1, 84], b = [33, 145, 140], c = [253, 231, 37];
    const [p, q, s] = t < 0.5 ? [a, b, t * 2] : [b, c, (t - 0.5) * 2];
    return `rgb(${p.map((v, i) => Math.round(v + (q[i] - v) * s)).join(",")})`;
  }
  const SHADES = Array.from({length: 64}, (_, k) => colourOf(k / 63));  // one fillStyle per shade, not per point

  // Pareto front of (x, y) with the directions of the table (lower is better unless "max"): a row is on
  // it when no other row with different values is at least as good in both -- graphcost.explore.pareto_front.
  function paretoFront(x, y) {
    const sx = dirs[x] === "max" ? -1 : 1, sy = dirs[y] === "max" ? -1 : 1;
    const pts = [], X = col[x] || [], Y = col[y] || [];
    for (let i = 0; i < n; i++) if (num(X[i]) && num(Y[i])) pts.push([sx * X[i], sy * Y[i], i]);
    pts.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
    const on = [];
    let best = Infinity;
    for (let i = 0; i < pts.length;) {
      let j = i;
      while (j < pts.length && pts[j][0] === pts[i][0] && pts[j][1] === pts[i][1]) j++;
      if (pts[i][1] < best) for (let k = i; k < j; k++) on.push(pts[k][2]);
      best = Math.min(best, pts[i][1]);
      i = j;
    }
    return on.sort((a, b) => a - b);
  }

  function scatter() {
    const cv = $("scatter"), g = cv.getContext("2d"), W = cv.width, H = cv.height, m = 50;
    g.clearRect(0, 0, W, H);
    const [x0, x1] = extent(state.x), [y0, y1] = extent(state.y), [c0, c1] = extent(state.colour);
    const px = (v) => m + (v - x0) / (x1 - x0) * (W - 2 * m), py = (v) => H - m - (v - y0) / (y1 - y0) * (H - 2 * m);
    g.strokeStyle = "#999"; g.strokeRect(m, m, W - 2 * m, H - 2 * m);
    g.fillStyle = "#333"; g.font = "12px sans-serif";
    g.fillText(`${state.x} (${fmt(x0)} .. ${fmt(x1)})`, m, H - 15);
    g.save(); g.translate(14, H - m); g.rotate(-Math.PI / 2); g.fillText(`${state.y} (${fmt(y0)} .. ${fmt(y1)})`, 0, 0); g.restore();
    const X = col[state.x] || [], Y = col[state.y] || [], C = col[state.colour] || [];
    // points grouped by fill: 0..63 shades of the colour column, 64 selected without a colour value, 65 not selected
    const shade = new Uint8Array(n).fill(65);
    for (const i of selected) shade[i] = num(C[i]) ? Math.round(Math.max(0, Math.min(1, (C[i] - c0) / (c1 - c0))) * 63) : 64;
    drawnPoints = 0;
    const byShade = Array.from({length: 66}, () => []);
    for (let i = 0; i < n; i++) {
      if (!num(X[i]) || !num(Y[i])) continue;
      byShade[shade[i]].push(i);
      drawnPoints++;
    }
    for (const k of [65].concat(SHADES.map((_, j) => j), [64])) {  // the unselected first: the selection on top
      g.fillStyle = k === 65 ? "#ddd" : k === 64 ? "#888" : SHADES[k];
      for (const i of byShade[k]) g.fillRect(px(X[i]) - 2, py(Y[i]) - 2, 4, 4);
    }
    front = paretoFront(state.x, state.y);
    const line = front.slice().sort((a, b) => X[a] - X[b]);
    g.strokeStyle = "#d62728"; g.lineWidth = 1.5; g.beginPath();
    line.forEach((i, k) => { k ? g.lineTo(px(X[i]), py(Y[i])) : g.moveTo(px(X[i]), py(Y[i])); });
    g.stroke();
    for (const i of front) { g.beginPath(); g.arc(px(X[i]), py(Y[i]), 5, 0, 2 * Math.PI); g.stroke(); }
    $("legend").textContent = `${drawnPoints} points, ${front.length} on the Pareto front of ${state.x} ` +
      `(${dirs[state.x] || "min"}) and ${state.y} (${dirs[state.y] || "min"}); colour: ${state.colour} ${fmt(c0)} .. ${fmt(c1)}`;
  }

  const PC = {m: 30, top: 40};
  function axisX(k, W) { return PC.m + k * (W - 2 * PC.m) / Math.max(1, columns.length - 1); }
  function parallel() {
    const cv = $("parallel"), g = cv.getContext("2d"), W = cv.width, H = cv.height, bottom = H - 30;
    g.clearRect(0, 0, W, H);
    const ext = columns.map(extent);
    const yOf = (k, v) => bottom - (v - ext[k][0]) / (ext[k][1] - ext[k][0]) * (bottom - PC.top);
    const chosen = new Uint8Array(n);
    for (const i of selected) chosen[i] = 1;
    const xs = columns.map((_, k) => axisX(k, W)), cs = columns.map((c) => col[c]);
    for (const pass of [0, 1]) {
      if (pass === 0 && selected.length === n) continue;  // nothing unselected
      g.strokeStyle = pass ? "rgba(31,119,180,0.35)" : "rgba(0,0,0,0.05)";
      g.beginPath();
      for (let i = 0; i < n; i++) {
        if (chosen[i] !== pass) continue;
        let started = false;
        for (let k = 0; k < cs.length; k++) {
          const v = cs[k][i];
          if (!num(v)) { started = false; continue; }
          const Y = yOf(k, v);
          started ? g.lineTo(xs[k], Y) : g.moveTo(xs[k], Y); started = true;
        }
      }
      g.stroke();
    }
    g.fillStyle = "#222"; g.font = "11px sans-serif"; g.textAlign = "center";
    columns.forEach((c, k) => {
      const X = axisX(k, W);
      g.strokeStyle = "#555"; g.beginPath(); g.moveTo(X, PC.top); g.lineTo(X, bottom); g.stroke();
      g.save(); g.translate(X, PC.top - 6); g.rotate(-0.35); g.fillText(c, 0, 0); g.restore();
      if (brushes[c]) {
        const [lo, hi] = brushes[c];
        g.fillStyle = "rgba(214,39,40,0.25)";
        g.fillRect(X - 6, yOf(k, hi), 12, yOf(k, lo) - yOf(k, hi));
        g.fillStyle = "#222";
      }
    });
  }

  function select() {
    selected = [];
    const active = Object.entries(brushes).map(([c, range]) => [col[c] || [], range[0], range[1]]);
    outer: for (let i = 0; i < n; i++) {
      for (const [values, lo, hi] of active) { const v = values[i]; if (!num(v) || v < lo || v > hi) continue outer; }
      selected.push(i);
    }
    scatter(); parallel(); table();
  }

  const SHOWN = 300;
  function table() {
    const keys = data.keys.model.concat(data.keys.hardware);
    const cols = keys.concat(columns.filter((c) => !keys.includes(c)));
    const head = "<tr><th>#</th>" + cols.map((c) => `<th>${c}</th>`).join("") + "</tr>";
    const body = selected.slice(0, SHOWN).map((i) => `<tr data-row="${i}"><td>${i}</td>` +
      cols.map((c) => `<td>${fmt(at(c, i))}</td>`).join("") + "</tr>").join("");
    $("rows").innerHTML = head + body;
    $("count").textContent = `${selected.length} of ${n} rows selected` +
      (selected.length > SHOWN ? ` (first ${SHOWN} shown)` : "");
  }

  function command(i) {
    return data.command + data.keys.model.concat(data.keys.hardware).map((k) => ` --grid ${k}=${at(k, i)}`).join("");
  }
  function show(i) {
    const line = (k) => `<tr><th>${k}</th><td>${fmt(at(k, i))}</td></tr>`;
    $("detail").innerHTML = `<h3>row ${i}</h3><table id="detail-model"><caption>model</caption>${data.keys.model.map(line).join("")}</table>` +
      `<table id="detail-hardware"><caption>hardware</caption>${data.keys.hardware.map(line).join("")}</table>` +
      `<p>reproduce it:</p><pre id="command"></pre>`;
    $("command").textContent = command(i);
  }

  function brushOnDrag() {
    const cv = $("parallel");
    let drag = null;
    const where = (e) => { const b = cv.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; };
    cv.addEventListener("mousedown", (e) => {
      const [x, y] = where(e);
      const k = columns.findIndex((_, j) => Math.abs(axisX(j, cv.width) - x) < 10);
      if (k >= 0) drag = {k, y0: y};
    });
    window.addEventListener("mouseup", (e) => {
      if (!drag) return;
      const [, y1] = where(e), c = columns[drag.k], [lo, hi] = extent(c), bottom = cv.height - 30;
      const value = (y) => lo + (bottom - Math.max(PC.top, Math.min(bottom, y))) / (bottom - PC.top) * (hi - lo);
      if (Math.abs(y1 - drag.y0) < 3) delete brushes[c];
      else brushes[c] = [Math.min(value(drag.y0), value(y1)), Math.max(value(drag.y0), value(y1))];
      drag = null; select();
    });
  }

  function controls() {
    for (const [id, key] of [["x", "x"], ["y", "y"], ["colour", "colour"]]) {
      const s = $(id);
      s.innerHTML = columns.map((c) => `<option${c === state[key] ? " selected" : ""}>${c}</option>`).join("");
      s.addEventListener("change", () => { state[key] = s.value; scatter(); });
    }
    $("rows").addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-row]");
      if (tr) show(Number(tr.dataset.row));
    });
    $("clear").addEventListener("click", () => { for (const c in brushes) delete brushes[c]; select(); });
    brushOnDrag();
  }

  window.graphcostSweep = {
    get rows() { return rows(); },
    columns,
    pointCount: () => drawnPoints,
    paretoRows: () => front.slice(),
    selected: () => selected.slice(),
    setAxes(x, y, colour) { state.x = x; state.y = y; if (colour) state.colour = colour; scatter(); },
    brush(col, lo, hi) { if (lo === null) delete brushes[col]; else brushes[col] = [lo, hi]; select(); },
    command,
  };
  controls(); select();
  window.graphcostSweep.readyMs = performance.now();  // since navigation began: what benchmarks/bench_sweep.py reads
  document.body.dataset.ready = "true";
})();
