// The sweep explorer: scatter (Pareto front of the two axes highlighted, colour by a third column),
// parallel coordinates of every numeric column with brushing, the selected rows as a table, and a
// clicked row's model / hardware keys and the command that reproduces it. No library, no fetch.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("sweep-data").textContent);
  const rows = data.rows, columns = data.columns, dirs = data.directions;
  const $ = (id) => document.getElementById(id);
  const brushes = {};               // column -> [lo, hi]
  let selected = rows.map((_, i) => i), front = [], drawnPoints = 0;
  const state = {x: data.axes[0], y: data.axes[1], colour: data.axes[2]};

  const num = (v) => typeof v === "number" && isFinite(v);
  const fmt = (v) => num(v) ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : (v === null || v === undefined ? "" : String(v));
  function extent(col) {
    let lo = Infinity, hi = -Infinity;
    for (const r of rows) { const v = r[col]; if (num(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }
    if (lo === Infinity) return [0, 1];
    return lo === hi ? [lo - 0.5, hi + 0.5] : [lo, hi];
  }
  function colourOf(t) {          // dark blue -> teal -> yellow
    t = Math.max(0, Math.min(1, t));
    const a = [68, 1, 84], b = [33, 145, 140], c = [253, 231, 37];
    const [p, q, s] = t < 0.5 ? [a, b, t * 2] : [b, c, (t - 0.5) * 2];
    return `rgb(${p.map((v, i) => Math.round(v + (q[i] - v) * s)).join(",")})`;
  }

  // Pareto front of (x, y) with the directions of the table (lower is better unless "max"): a row is on
  // it when no other row with different values is at least as good in both -- graphcost.explore.pareto_front.
  function paretoFront(x, y) {
    const sx = dirs[x] === "max" ? -1 : 1, sy = dirs[y] === "max" ? -1 : 1;
    const pts = [];
    rows.forEach((r, i) => { if (num(r[x]) && num(r[y])) pts.push([sx * r[x], sy * r[y], i]); });
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
    const chosen = new Set(selected);
    drawnPoints = 0;
    rows.forEach((r, i) => {
      if (!num(r[state.x]) || !num(r[state.y])) return;
      g.fillStyle = chosen.has(i) ? (num(r[state.colour]) ? colourOf((r[state.colour] - c0) / (c1 - c0)) : "#888") : "#ddd";
      g.fillRect(px(r[state.x]) - 2, py(r[state.y]) - 2, 4, 4);
      drawnPoints++;
    });
    front = paretoFront(state.x, state.y);
    const line = front.slice().sort((a, b) => rows[a][state.x] - rows[b][state.x]);
    g.strokeStyle = "#d62728"; g.lineWidth = 1.5; g.beginPath();
    line.forEach((i, k) => { const X = px(rows[i][state.x]), Y = py(rows[i][state.y]); k ? g.lineTo(X, Y) : g.moveTo(X, Y); });
    g.stroke();
    for (const i of front) { g.beginPath(); g.arc(px(rows[i][state.x]), py(rows[i][state.y]), 5, 0, 2 * Math.PI); g.stroke(); }
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
    const chosen = new Set(selected);
    for (const pass of [false, true]) {
      g.strokeStyle = pass ? "rgba(31,119,180,0.35)" : "rgba(0,0,0,0.05)";
      g.beginPath();
      rows.forEach((r, i) => {
        if (chosen.has(i) !== pass) return;
        let started = false;
        columns.forEach((c, k) => {
          if (!num(r[c])) { started = false; return; }
          const X = axisX(k, W), Y = yOf(k, r[c]);
          started ? g.lineTo(X, Y) : g.moveTo(X, Y); started = true;
        });
      });
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
    rows.forEach((r, i) => {
      for (const c in brushes) { const v = r[c], [lo, hi] = brushes[c]; if (!num(v) || v < lo || v > hi) return; }
      selected.push(i);
    });
    scatter(); parallel(); table();
  }

  const SHOWN = 300;
  function table() {
    const keys = data.keys.model.concat(data.keys.hardware);
    const cols = keys.concat(columns.filter((c) => !keys.includes(c)));
    const head = "<tr><th>#</th>" + cols.map((c) => `<th>${c}</th>`).join("") + "</tr>";
    const body = selected.slice(0, SHOWN).map((i) => `<tr data-row="${i}"><td>${i}</td>` +
      cols.map((c) => `<td>${fmt(rows[i][c])}</td>`).join("") + "</tr>").join("");
    $("rows").innerHTML = head + body;
    $("count").textContent = `${selected.length} of ${rows.length} rows selected` +
      (selected.length > SHOWN ? ` (first ${SHOWN} shown)` : "");
  }

  function command(i) {
    const r = rows[i];
    return data.command + data.keys.model.concat(data.keys.hardware).map((k) => ` --grid ${k}=${r[k]}`).join("");
  }
  function show(i) {
    const r = rows[i], line = (k) => `<tr><th>${k}</th><td>${fmt(r[k])}</td></tr>`;
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
    rows, columns,
    pointCount: () => drawnPoints,
    paretoRows: () => front.slice(),
    selected: () => selected.slice(),
    setAxes(x, y, colour) { state.x = x; state.y = y; if (colour) state.colour = colour; scatter(); },
    brush(col, lo, hi) { if (lo === null) delete brushes[col]; else brushes[col] = [lo, hi]; select(); },
    command,
  };
  controls(); select();
  document.body.dataset.ready = "true";
})();
