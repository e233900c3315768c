/* graphcost view: draws the embedded JSON (analysis, map, graph) with cytoscape + dagre. No network. */
(function () {
  'use strict';

  // ------------------------------------------------------------------ data
  function block(name) {
    var el = document.getElementById('graphcost-' + name);
    return el ? JSON.parse(el.textContent) : null;
  }
  var A = block('analysis'), M = block('map'), G = block('graph');
  var $ = function (id) { return document.getElementById(id); };
  var mapLayer = {};
  // a tied weight's layer is on arrays and its lookups digital under one name: the arrays' entry wins
  if (M) M.layers.forEach(function (l) { if (!mapLayer[l.name] || l.resource === 'analog') mapLayer[l.name] = l; });

  // ------------------------------------------------------------------ formatting
  function human(v) {
    if (v === null || v === undefined) return '';
    if (typeof v !== 'number') return String(v);
    var units = [['T', 1e12], ['G', 1e9], ['M', 1e6], ['K', 1e3]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(v) >= units[i][1]) return (v / units[i][1]).toFixed(2) + units[i][0];
    }
    return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  }
  function mb(v) { return (v / 1e6).toLocaleString('en', {maximumFractionDigits: 2, minimumFractionDigits: 2}) + ' MB'; }
  function seconds(v) {
    if (v === null || v === undefined) return '';
    if (v === 0 || v >= 1) return v.toPrecision(4) + ' s';
    var u = [['ms', 1e-3], ['us', 1e-6], ['ns', 1e-9]];
    for (var i = 0; i < u.length; i++) if (v >= u[i][1] || i === 2) return (v / u[i][1]).toPrecision(3) + ' ' + u[i][0];
  }
  function si(v, unit) {
    var p = [['T', 1e12], ['G', 1e9], ['M', 1e6], ['k', 1e3], ['', 1], ['m', 1e-3], ['u', 1e-6], ['n', 1e-9], ['p', 1e-12]];
    for (var i = 0; i < p.length; i++) if (Math.abs(v) >= p[i][1]) return (v / p[i][1]).toPrecision(3) + ' ' + p[i][0] + unit;
    return v === 0 ? '0 ' + unit : v.toExponential(2) + ' ' + unit;
  }
  function exact(v) { return typeof v === 'number' && Number.isInteger(v) ? v.toLocaleString('en') : String(v); }
  function fmtKey(key, v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v !== 'number') return Array.isArray(v) ? JSON.stringify(v) : String(v);
    if (/bytes/.test(key)) return mb(v);
    if (/_s\b/.test(key)) return seconds(v);
    if (/tops_per_w\b/.test(key)) return v.toPrecision(3) + ' TOPS/W';
    if (/_j\b/.test(key)) return si(v, 'J');
    if (/_w\b/.test(key)) return si(v, 'W');
    if (/_mm2\b/.test(key)) return v.toPrecision(4) + ' mm²';
    if (/utili[sz]ation/.test(key)) return (100 * v).toFixed(1) + '%';
    return Number.isInteger(v) && Math.abs(v) < 1e5 ? String(v) : human(v);
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]; });
  }

  // ------------------------------------------------------------------ tables
  function table(columns, rows, opts) {
    opts = opts || {};
    var head = '<tr>' + columns.map(function (c) { return '<th>' + esc(c.label || c.key) + '</th>'; }).join('') + '</tr>';
    var body = rows.map(function (r) {
      var cls = opts.rowClass ? opts.rowClass(r) : '';
      return '<tr' + (cls ? ' class="' + cls + '"' : '') + '>' + columns.map(function (c) {
        var v = r[c.key];
        return '<td data-key="' + esc(c.key) + '" data-value="' + esc(v === undefined ? '' : v) + '">' +
          esc(c.fmt ? c.fmt(v, r) : fmtKey(c.key, v)) + '</td>';
      }).join('') + '</tr>';
    }).join('');
    return (opts.title ? '<h3>' + esc(opts.title) + '</h3>' : '') + '<table' + (opts.id ? ' id="' + opts.id + '"' : '') +
      '>' + head + body + '</table>';
  }
  function kvTable(pairs, id) {
    return table([{key: 'metric'}, {key: 'value', fmt: function (v, r) { return r.text; }}],
      pairs.map(function (p) { return {metric: p[0], value: p[1], text: p[2] === undefined ? fmtKey('', p[1]) : p[2]}; }),
      {id: id});
  }
  function numericKeys(rows, skip) {
    var keys = [];
    rows.forEach(function (r) {
      Object.keys(r).forEach(function (k) {
        if (typeof r[k] === 'number' && keys.indexOf(k) < 0 && (!skip || skip.indexOf(k) < 0)) keys.push(k);
      });
    });
    return keys;
  }
  function allKeys(rows) {
    var keys = [];
    rows.forEach(function (r) { Object.keys(r).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); }); });
    return keys;
  }

  function renderAnalysisTables() {
    var shape = A.input_shape.join('x');
    $('title').textContent = A.model + ' @ ' + shape;
    $('headline').innerHTML = ['params ' + human(A.params), 'MACs ' + human(A.macs), 'graph size ' + mb(A.graph_size_bytes),
      'latency ' + A.latency_layers + ' layers', A.loop_nodes + ' unique layers / ' + A.dag_nodes + ' calls']
      .concat(M ? ['arrays ' + M.arrays_used.toLocaleString('en'), (M.fits ? 'fits' : 'does not fit'),
        human(M.throughput_fps) + ' frames/s'] : [])
      .map(function (t) { return '<span>' + esc(t) + '</span>'; }).join('');
    var summary = [['params', A.params, exact(A.params)], ['MACs (multiply-accumulates, not FLOPs)', A.macs, exact(A.macs)],
      ['other ops (pool, norm, act, add, resize)', A.other_ops, exact(A.other_ops)],
      ['graph size' + (A.all_layers ? ' (all layers)' : ' (conv layers)'), A.graph_size_bytes, mb(A.graph_size_bytes)],
      ['latency (conv layers on longest path)', A.latency_layers, String(A.latency_layers)],
      ['unique layers / calls', A.loop_nodes, A.loop_nodes + ' / ' + A.dag_nodes]];
    var html = kvTable(summary, 'analysis-summary');
    if (A.outputs.length > 1 || M) html += outputsTable();
    (A.opaque_modules || []).forEach(function (m) { html += '<p class="hint">note: ' + esc(m) + ' was counted as one opaque layer</p>'; });
    if ((A.unknown_ops || []).length) html += '<p class="hint">ops without a cost formula (counted as 0): ' + esc(A.unknown_ops.join(', ')) + '</p>';
    $('analysis-tables').innerHTML = html;
    var cols = ['name', 'op', 'kind', 'calls', 'params', 'macs', 'other_ops', 'in_bytes', 'out_bytes', 'graph_size_bytes', 'latency_layers']
      .map(function (k) { return {key: k}; });
    $('layers-table').innerHTML = table(cols, A.layers, {id: 'layers'});
  }

  function outputRows() {
    return A.outputs.map(function (o, i) {
      var row = {output: o.index, macs: o.macs, latency_layers: o.latency_layers, graph_size_bytes: o.graph_size_bytes, params: o.params};
      if (M && M.outputs[i]) {
        Object.keys(M.outputs[i]).forEach(function (k) {
          if (['index', 'node', 'shape', 'name'].indexOf(k) < 0) row['map_' + k] = M.outputs[i][k];
        });
        var per = perOutputReports();
        Object.keys(per).forEach(function (k) { row['map_' + k] = per[k][i]; });
      }
      return row;
    });
  }
  function outputsTable() {
    var rows = outputRows();
    return table(allKeys(rows).map(function (k) { return {key: k, label: k.replace(/^map_/, 'map: ')}; }), rows,
      {title: 'outputs', id: 'outputs'});
  }

  // numbers of the map JSON's nested reports (energy, area, ...): 'energy.per_frame_j', 'area.breakdown_mm2.adc', ...
  function mapReports() {
    var out = [];
    function walk(prefix, obj) {
      Object.keys(obj).forEach(function (k) {
        var v = obj[k], key = prefix + '.' + k;
        if (typeof v === 'number' || typeof v === 'string') out.push([key, v]);
        else if (v && typeof v === 'object' && !Array.isArray(v)) walk(key, v);
      });
    }
    Object.keys(M).forEach(function (k) {
      if (M[k] && typeof M[k] === 'object' && !Array.isArray(M[k]) && ['array', 'chip', 'accuracy'].indexOf(k) < 0) walk(k, M[k]);
    });
    return out;
  }
  // per-output lists of the nested reports (e.g. energy.per_output_j), one value per anytime output
  function perOutputReports() {
    var out = {};
    Object.keys(M).forEach(function (k) {
      var v = M[k];
      if (!v || typeof v !== 'object' || Array.isArray(v)) return;
      Object.keys(v).forEach(function (f) {
        if (/^per_output/.test(f) && Array.isArray(v[f]) && v[f].length === A.outputs.length) out[k + '_' + f.replace(/^per_output_?/, '')] = v[f];
      });
    });
    return out;
  }

  function renderMapTables() {
    if (!M) return;
    $('map-section').hidden = false;
    var slow = M.layers.reduce(function (a, b) { return (b.stage_time_s > a.stage_time_s) ? b : a; }, M.layers[0]);
    var pairs = [['crossbar', M.crossbar, M.crossbar + ', ' + M.array.weight_bits + '-bit weights in ' + M.array.cell_bits + '-bit cells' +
        (M.array.differential ? ', differential' : '')],
      ['arrays used', M.arrays_used, M.arrays_used.toLocaleString('en') + (M.arrays_available !== null ? ' of ' + M.arrays_available.toLocaleString('en') : ' (unlimited chip)')],
      ['min arrays to keep every layer resident', M.arrays_needed, M.arrays_needed.toLocaleString('en')],
      ['fits' + (M.arrays_available !== null ? ' on --arrays ' + M.arrays_available : ''), M.fits, M.fits ? 'yes' : 'no: weights are rewritten every frame'],
      ['throughput', M.throughput_fps, human(M.throughput_fps) + ' frames/s'],
      ['latency (last output)', M.latency_s, seconds(M.latency_s)],
      ['utilization (cells holding weights)', M.utilization, (100 * M.utilization).toFixed(1) + '%'],
      ['slowest stage (bottleneck)', M.bottleneck, M.bottleneck + ' (' + seconds(M.frame_time_s) + ' per frame)']];
    if (M.coverage) {
      var c = M.coverage, parts = [['analog', c.analog_macs], ['digital', c.digital_macs]];
      if (c.gain_cell_macs) parts.push(['gain-cell', c.gain_cell_macs]);
      pairs.push(['MACs per frame by resource', c.total_macs, parts.map(function (p) {
        return p[0] + ' ' + human(p[1]) + ' (' + (100 * p[1] / (c.total_macs || 1)).toFixed(1) + '%)'; }).join(' / ') +
        ' of ' + human(c.total_macs)]);
    }
    if (M.generation) {
      var g = M.generation;
      pairs.push(['generation', g.prompt_tokens, g.prompt_tokens + ' + ' + g.generated_tokens + ' tokens, batch ' + g.batch +
        ', ' + g.attention + ' attention'],
        ['time to first token', g.ttft_s, seconds(g.ttft_s)],
        ['decode per token (first / last step)', g.decode_s_per_token_last, seconds(g.decode_s_per_token_first) + ' / ' +
          seconds(g.decode_s_per_token_last)],
        ['tokens/s', g.tokens_per_s, human(g.tokens_per_s)],
        ['energy per generated token', g.energy_j_per_token, si(g.energy_j_per_token, 'J')],
        ['KV cache at the end', g.kv_cache_bytes, mb(g.kv_cache_bytes) + ' in ' + g.kv_cache_location]);
    }
    if (M.chips && M.chips.count > 1) pairs.push(['chips', M.chips.count, M.chips.count + ' of ' + M.chips.arrays_per_chip + ' arrays']);
    mapReports().forEach(function (p) { pairs.push([p[0], p[1], fmtKey(p[0], p[1])]); });
    var html = kvTable(pairs, 'map-summary');
    var keys = allKeys(M.layers);
    var stage = function (r) { return typeof r.stage_time_s === 'number' ? r.stage_time_s : -1; };
    var rows = M.layers.slice().sort(function (a, b) { return stage(b) - stage(a); });
    html += table(keys.map(function (k) { return {key: k}; }), rows,
      {title: 'arrays per layer (slowest stage first)', id: 'map-layers', rowClass: function (r) { return r === slow ? 'slowest' : ''; }});
    (M.notes || []).forEach(function (n) { html += '<p class="hint">note: ' + esc(n) + '</p>'; });
    $('map-tables').innerHTML = html;
  }

  // ------------------------------------------------------------------ plots (anytime outputs)
  function plot(title, key, values, fmt) {
    var w = 260, h = 150, l = 54, b = 24, t = 18, r = 8;
    var max = Math.max.apply(null, values.concat([0])) || 1, n = values.length;
    var x = function (i) { return l + (n > 1 ? i * (w - l - r) / (n - 1) : (w - l - r) / 2); };
    var y = function (v) { return h - b - (v / max) * (h - b - t); };
    var path = values.map(function (v, i) { return (i ? 'L' : 'M') + x(i).toFixed(1) + ',' + y(v).toFixed(1); }).join('');
    var dots = values.map(function (v, i) {
      return '<circle data-output="' + (i + 1) + '" cx="' + x(i).toFixed(1) + '" cy="' + y(v).toFixed(1) + '" r="3" fill="#1f77b4"><title>output ' +
        (i + 1) + ': ' + esc(fmt(v)) + '</title></circle>';
    }).join('');
    return '<svg data-key="' + key + '" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + ' ' + h + '">' +
      '<text x="' + l + '" y="12" font-size="11" font-weight="600">' + esc(title) + '</text>' +
      '<line x1="' + l + '" y1="' + (h - b) + '" x2="' + (w - r) + '" y2="' + (h - b) + '" stroke="#999"/>' +
      '<line x1="' + l + '" y1="' + t + '" x2="' + l + '" y2="' + (h - b) + '" stroke="#999"/>' +
      '<text x="' + (l - 4) + '" y="' + (t + 4) + '" font-size="9" text-anchor="end">' + esc(fmt(max)) + '</text>' +
      '<text x="' + (l - 4) + '" y="' + (h - b) + '" font-size="9" text-anchor="end">0</text>' +
      '<text x="' + ((l + w - r) / 2) + '" y="' + (h - 6) + '" font-size="9" text-anchor="middle">output n (1..' + n + ')</text>' +
      '<path d="' + path + '" fill="none" stroke="#1f77b4" stroke-width="1.5"/>' + dots + '</svg>';
  }
  // a click on a plotted point (data-output="n") selects output n, as the output menu does
  function selectOutputOnClick(container) {
    container.addEventListener('click', function (ev) {
      var o = ev.target.getAttribute && ev.target.getAttribute('data-output');
      if (o) { $('output-select').value = o; setOutput(+o); }
    });
  }

  // ------------------------------------------------------------------ Fig. 5: accuracy per output against its cost
  // x: one cost per output; series: [{name, colour, ys}]; every point is an output (click selects it)
  function xyPlot(title, key, xs, series, xfmt) {
    var w = 280, h = 170, l = 44, b = 28, t = 18, r = 10;
    var all = [].concat.apply([], series.map(function (s) { return s.ys; }));
    var xmin = Math.min.apply(null, xs), xmax = Math.max.apply(null, xs);
    var ymin = Math.min.apply(null, all), ymax = Math.max.apply(null, all);
    if (xmax === xmin) { xmax += 1; } if (ymax === ymin) { ymax += 1e-3; ymin -= 1e-3; }
    var x = function (v) { return l + (v - xmin) / (xmax - xmin) * (w - l - r); };
    var y = function (v) { return h - b - (v - ymin) / (ymax - ymin) * (h - b - t); };
    var body = series.map(function (s) {
      var path = s.ys.map(function (v, i) { return (i ? 'L' : 'M') + x(xs[i]).toFixed(1) + ',' + y(v).toFixed(1); }).join('');
      return '<path d="' + path + '" fill="none" stroke="' + s.colour + '" stroke-width="1.2"/>' + s.ys.map(function (v, i) {
        return '<circle data-output="' + (i + 1) + '" data-series="' + esc(s.name) + '" cx="' + x(xs[i]).toFixed(1) + '" cy="' +
          y(v).toFixed(1) + '" r="3" fill="' + s.colour + '"><title>output ' + (i + 1) + ', ' + esc(s.name) + ': ' +
          v.toFixed(4) + ' at ' + esc(xfmt(xs[i])) + '</title></circle>';
      }).join('');
    }).join('');
    var legend = series.map(function (s, i) {
      return '<text x="' + (w - r) + '" y="' + (t + 10 + 11 * i) + '" font-size="9" text-anchor="end" fill="' + s.colour + '">' + esc(s.name) + '</text>';
    }).join('');
    return '<svg data-key="fig5-' + key + '" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + ' ' + h + '">' +
      '<text x="' + l + '" y="12" font-size="11" font-weight="600">' + esc(title) + '</text>' +
      '<line x1="' + l + '" y1="' + (h - b) + '" x2="' + (w - r) + '" y2="' + (h - b) + '" stroke="#999"/>' +
      '<line x1="' + l + '" y1="' + t + '" x2="' + l + '" y2="' + (h - b) + '" stroke="#999"/>' +
      '<text x="' + (l - 4) + '" y="' + (t + 4) + '" font-size="9" text-anchor="end">' + ymax.toFixed(3) + '</text>' +
      '<text x="' + (l - 4) + '" y="' + (h - b) + '" font-size="9" text-anchor="end">' + ymin.toFixed(3) + '</text>' +
      '<text x="' + l + '" y="' + (h - 14) + '" font-size="9">' + esc(xfmt(xmin)) + '</text>' +
      '<text x="' + (w - r) + '" y="' + (h - 14) + '" font-size="9" text-anchor="end">' + esc(xfmt(xmax)) + '</text>' +
      '<text x="' + ((l + w - r) / 2) + '" y="' + (h - 3) + '" font-size="9" text-anchor="middle">' + esc(key) + '</text>' +
      body + legend + '</svg>';
  }
  function renderFig5() {
    var acc = M && M.accuracy, outs = acc && acc.outputs;
    if (!outs || outs.length !== A.outputs.length) return;
    var metric = ('top1' in outs[0]) ? 'top1' : 'miou';
    // float first, so the simulated points are drawn on top of it
    var series = [{name: 'float ' + metric, colour: '#888', ys: outs.map(function (o) { return o['float_' + metric]; })},
      {name: 'simulated ' + metric, colour: '#1f77b4', ys: outs.map(function (o) { return o[metric]; })}];
    var rows = outputRows(), keys = ['graph_size_bytes', 'latency_layers', 'macs', 'params'];
    if ('map_energy_j' in rows[0]) keys.push('map_energy_j');
    $('fig5-section').hidden = false;
    $('fig5').innerHTML = keys.map(function (k) {
      return xyPlot(metric + ' over ' + k.replace(/^map_/, ''), k, rows.map(function (r) { return r[k]; }), series,
        function (v) { return fmtKey(k, v); });
    }).join('');
    selectOutputOnClick($('fig5'));
  }
  function renderPlots() {
    if (A.outputs.length < 2) return;
    $('plots-section').hidden = false;
    var rows = outputRows(), html = '';
    var keys = numericKeys(rows, ['output', 'map_index']);
    keys.forEach(function (k) {
      html += plot(k.replace(/^map_/, 'map: '), k, rows.map(function (r) { return r[k]; }), function (v) { return fmtKey(k, v); });
    });
    $('plots').innerHTML = html;
    selectOutputOnClick($('plots'));
  }

  renderAnalysisTables();
  renderMapTables();
  renderPlots();
  renderFig5();
  if (!G) {
    $('cy').innerHTML = '<p class="hint" style="padding:12px">No graph in this page (rendered from an Analysis without its trace).</p>';
    document.body.setAttribute('data-ready', 'true');
    return;
  }

  // ------------------------------------------------------------------ metrics on nodes
  var METRICS = [
    {key: 'macs', label: 'MACs'}, {key: 'params', label: 'params'}, {key: 'graph_size_bytes', label: 'graph size (bytes)'},
    {key: 'latency', label: 'latency depth (conv layers)'}, {key: 'other_ops', label: 'other ops'}, {key: 'calls', label: 'calls'}
  ];
  if (M) {
    var first = ['arrays', 'stage_time_s', 'utilization', 'tiles'];
    numericKeys(M.layers).sort(function (a, b) {
      var ia = first.indexOf(a), ib = first.indexOf(b);
      var ea = /energy/.test(a) ? 0 : 1, eb = /energy/.test(b) ? 0 : 1;
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || ea - eb || (a < b ? -1 : 1);
    }).forEach(function (k) { METRICS.push({key: 'map:' + k, label: 'map: ' + k}); });
    METRICS.push({key: 'resource', label: 'map: resource (analog / digital / gain-cell)'});
  }
  // where a call runs, as the mapping places it: on arrays (a mapped layer's weight call), in gain-cell arrays
  // (an activation x activation matmul under gain-cell attention), else on the digital unit
  var RESOURCE_COLOURS = {'analog': '#1f77b4', 'digital': '#ff7f0e', 'gain-cell': '#2ca02c', 'mixed': '#b0bec5'};
  var WEIGHT_KINDS = ['conv', 'linear', 'recurrent'];
  function resourceOf(view, i) {
    var rec = view === 'loop' ? G.loop.nodes[i] : G.dag.nodes[i], ml = mapLayer[layerRecord(view, i).id];
    if (ml && ml.resource === 'analog' && (view === 'loop' || WEIGHT_KINDS.indexOf(rec.kind) >= 0)) return 'analog';
    if (M.attention === 'gain-cell' && rec.kind === 'matmul' && rec.macs > 0) return 'gain-cell';
    return 'digital';
  }
  function layerRecord(view, i) { return view === 'loop' ? G.loop.nodes[i] : G.loop.nodes[G.dag.nodes[i].layer]; }
  function metricValue(view, i, key) {
    var rec = view === 'loop' ? G.loop.nodes[i] : G.dag.nodes[i];
    if (key === 'latency') return view === 'loop' ? rec.latency_layers : rec.depth;
    if (key === 'calls') return layerRecord(view, i).calls;
    if (key === 'params' || key === 'graph_size_bytes') return layerRecord(view, i)[key];
    if (key.indexOf('map:') === 0) {
      var ml = mapLayer[layerRecord(view, i).id];
      return ml ? ml[key.slice(4)] : null;
    }
    return rec[key];
  }

  // ------------------------------------------------------------------ state and collapse
  var state = {direction: 'auto', view: 'loop', colour: 'macs', size: 'none', output: 0, collapsed: {}, critical: true, search: ''};
  var current = null;  // {rep: [], members: {}, ...} of the drawn elements

  function scopes(scope) {  // 'a.b.c' -> ['a', 'a.b', 'a.b.c']
    if (!scope) return [];
    var parts = scope.split('.'), out = [];
    for (var i = 1; i <= parts.length; i++) out.push(parts.slice(0, i).join('.'));
    return out;
  }
  function repOf(node, index) {
    var s = scopes(node.scope);
    for (var i = 0; i < s.length; i++) if (state.collapsed[s[i]]) return 'module:' + s[i];
    return 'n' + index;
  }
  function maxDepth() {
    var d = 0;
    G[state.view].nodes.forEach(function (n) { d = Math.max(d, scopes(n.scope).length); });
    return d;
  }
  function collapseAtDepth(d) {
    state.collapsed = {};
    if (!d) return;
    G[state.view].nodes.forEach(function (n) {
      var s = scopes(n.scope);
      if (s.length >= d) state.collapsed[s[d - 1]] = true;
    });
  }
  function collapseShared() {  // outermost modules whose every node runs more than once: the looped blocks
    var byScope = {};
    G.loop.nodes.forEach(function (n) {
      scopes(n.scope).forEach(function (s) {
        var e = byScope[s] || (byScope[s] = {all: true, calls: n.calls});
        e.all = e.all && n.calls > 1;
      });
    });
    Object.keys(byScope).sort(function (a, b) { return a.split('.').length - b.split('.').length; }).forEach(function (s) {
      var covered = scopes(s).slice(0, -1).some(function (p) { return state.collapsed[p]; });
      if (byScope[s].all && !covered) {
        Object.keys(state.collapsed).forEach(function (c) { if (c.indexOf(s + '.') === 0) delete state.collapsed[c]; });
        state.collapsed[s] = true;
      }
    });
  }

  // ------------------------------------------------------------------ elements
  function nodeLabel(view, rec) {
    var short = rec.id.length > 28 ? '…' + rec.id.slice(-27) : rec.id;
    var calls = view === 'loop' && rec.calls > 1 ? ' ×' + rec.calls : '';
    return short + '\n' + rec.op + calls;
  }
  function groupElements(view, groups) {
    return Object.keys(groups).map(function (id) {
      var g = groups[id], scope = id.slice(7), callsSet = {};
      var sum = {macs: 0, params: 0, graph_size_bytes: 0, other_ops: 0};
      g.members.forEach(function (i) {
        var rec = view === 'loop' ? G.loop.nodes[i] : G.dag.nodes[i];
        sum.macs += rec.macs; sum.other_ops += rec.other_ops;
        callsSet[layerRecord(view, i).calls] = true;
      });
      var layers = {};
      g.members.forEach(function (i) { layers[view === 'loop' ? i : G.dag.nodes[i].layer] = true; });
      Object.keys(layers).forEach(function (li) { sum.params += G.loop.nodes[li].params; sum.graph_size_bytes += G.loop.nodes[li].graph_size_bytes; });
      var calls = Object.keys(callsSet).map(Number).sort(function (a, b) { return a - b; });
      var lo = calls[0], hi = calls[calls.length - 1];
      var callText = view !== 'loop' || hi < 2 ? '' : ' ×' + (lo === hi ? hi : lo + '–' + hi);
      return {group: 'nodes', data: {id: id, label: '▸ ' + scope + callText + '\n' + g.members.length + ' nodes', module: scope,
        members: g.members, sum: sum, calls: calls}, classes: 'module'};
    });
  }
  function buildElements() {
    var view = state.view, data = G[view], rep = [], groups = {}, els = [];
    data.nodes.forEach(function (n, i) {
      var r = repOf(n, i);
      rep.push(r);
      if (r.charAt(0) === 'm') { (groups[r] = groups[r] || {members: []}).members.push(i); return; }
      var cls = [n.kind, n.weight ? 'weight' : ''].join(' ');
      els.push({group: 'nodes', data: {id: r, index: i, label: nodeLabel(view, view === 'loop' ? n : Object.assign({}, n, {calls: 1}))}, classes: cls});
    });
    els = els.concat(groupElements(view, groups));
    // a drawn node's place in execution order: its (first) member's index (loop nodes come in first-call order)
    var first = {};
    rep.forEach(function (r, i) { if (!(r in first)) first[r] = i; });
    var edges = {}, loops = {};
    data.edges.forEach(function (e) {
      var s = rep[e[0]], t = rep[e[1]], count = view === 'loop' ? e[2] : 1;
      if (s === t && s.charAt(0) === 'm') { if (e[3] || e[0] === e[1]) loops[s] = true; return; }
      var key = s + '>' + t;
      if (!edges[key]) edges[key] = {source: s, target: t, count: 0, back: view === 'loop' && first[t] <= first[s]};
      edges[key].count += count;
    });
    Object.keys(loops).forEach(function (s) { edges[s + '>' + s] = {source: s, target: s, count: 0, back: true}; });
    Object.keys(edges).forEach(function (k, j) {
      var ed = edges[k];
      els.push({group: 'edges', data: {id: 'e' + j, source: ed.source, target: ed.target, count: ed.count},
        classes: ed.back ? 'back' : ''});
    });
    current = {view: view, rep: rep, groups: groups};
    return els;
  }

  // ------------------------------------------------------------------ cytoscape
  var STYLE = [
    {selector: 'node', style: {'shape': 'round-rectangle', 'label': 'data(label)', 'text-wrap': 'wrap', 'font-size': 9,
      'text-valign': 'center', 'text-halign': 'center', 'width': 'data(w)', 'height': 'data(h)',
      'background-color': 'data(color)', 'border-width': 1, 'border-color': '#78909c', 'color': 'data(fg)',
      'min-zoomed-font-size': 5}},
    {selector: 'node.weight', style: {'border-width': 2, 'border-color': '#37474f'}},
    {selector: 'node.io', style: {'shape': 'ellipse'}},
    {selector: 'node.shape', style: {'shape': 'rectangle', 'border-style': 'dotted'}},
    {selector: 'node.module', style: {'shape': 'cut-rectangle', 'border-width': 3, 'border-color': '#5c6bc0', 'font-weight': 'bold'}},
    {selector: 'edge', style: {'width': 1.2, 'line-color': '#90a4ae', 'target-arrow-color': '#90a4ae', 'target-arrow-shape': 'triangle',
      'arrow-scale': 0.7, 'curve-style': 'bezier'}},
    {selector: 'edge.back', style: {'line-style': 'dashed', 'line-color': '#ef6c00', 'target-arrow-color': '#ef6c00',
      'curve-style': 'unbundled-bezier', 'control-point-distances': 60, 'control-point-weights': 0.5}},
    {selector: 'edge:loop', style: {'curve-style': 'bezier', 'loop-direction': '-45deg', 'loop-sweep': '-60deg',
      'control-point-step-size': 40}},
    {selector: 'node.critical', style: {'border-color': '#d32f2f', 'border-width': 4, 'z-index': 10}},
    {selector: 'edge.critical', style: {'line-color': '#d32f2f', 'target-arrow-color': '#d32f2f', 'width': 3, 'z-index': 10}},
    {selector: '.faded', style: {'opacity': 0.15}},
    {selector: '.match', style: {'border-color': '#00c853', 'border-width': 5, 'z-index': 20}},
    {selector: 'node:selected', style: {'border-color': '#2962ff', 'border-width': 5, 'z-index': 30}}
  ];
  var cy = cytoscape({container: $('cy'), style: STYLE, wheelSensitivity: 0.3, minZoom: 0.02, maxZoom: 4,
    textureOnViewport: true, hideEdgesOnViewport: false, pixelRatio: 1});

  function draw() {
    cy.elements().remove();
    cy.add(buildElements());
    applyMetrics();
    var big = cy.nodes().length > 300, flow = cy.elements().not('edge.back').not('edge:loop');
    var dir = state.direction === 'auto' ? autoDirection(flow) : state.direction;
    // dagre's network-simplex ranks best but takes ~10 s on ~1000 nodes (tight-tree still ~3 s): big graphs
    // get the linear-time layered drawing, so the page opens and responds within a second
    if (big) layeredLayout(flow, dir, 8, 18);
    else flow.layout({name: 'dagre', rankDir: dir, nodeSep: 14, rankSep: 28, edgeSep: 4, ranker: 'network-simplex',
      fit: false, animate: false}).run();
    cy.edges('.back').style('control-point-distances', function (e) {
      var dy = Math.abs(e.source().position('y') - e.target().position('y'));
      return Math.min(400, 40 + dy / 4);
    });
    fitAll(20);
    applyHighlights();
    applySearch();
    $('counts').textContent = cy.nodes().length + ' nodes, ' + cy.edges().length + ' edges drawn (' +
      G[state.view].nodes.length + ' in the ' + (state.view === 'loop' ? 'loop-keeping graph' : 'execution DAG') + ')';
  }

  // cy.fit() measures every label's rendered box (a style pass costing ~0.4 s on ~1000 nodes); node boxes are
  // known from their data, so the whole drawing is fitted from positions and sizes alone
  function fitAll(padding) {
    var x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
    cy.nodes().forEach(function (n) {
      var p = n.position(), w = n.data('w') / 2, h = n.data('h') / 2;
      x1 = Math.min(x1, p.x - w); x2 = Math.max(x2, p.x + w); y1 = Math.min(y1, p.y - h); y2 = Math.max(y2, p.y + h);
    });
    if (!isFinite(x1)) return;
    var W = cy.width(), H = cy.height();
    var zoom = Math.min((W - 2 * padding) / Math.max(1, x2 - x1), (H - 2 * padding) / Math.max(1, y2 - y1));
    zoom = Math.max(cy.minZoom(), Math.min(cy.maxZoom(), zoom));
    cy.viewport({zoom: zoom, pan: {x: W / 2 - zoom * (x1 + x2) / 2, y: H / 2 - zoom * (y1 + y2) / 2}});
  }

  // longest-path rank of every node of the acyclic flow (back edges and self-loops are not in it), in
  // topological order: {rank: {id: r}, order: [node, ...], deepest: number of ranks}
  function ranksOf(flow) {
    var rank = {}, indeg = {}, queue = [], order = [], deepest = 0;
    flow.nodes().forEach(function (n) { indeg[n.id()] = n.incomers('edge').filter(function (e) { return flow.has(e); }).length; if (!indeg[n.id()]) queue.push(n); });
    while (queue.length) {
      var n = queue.shift(), r = rank[n.id()] || 0;
      rank[n.id()] = r;
      order.push(n);
      deepest = Math.max(deepest, r + 1);
      n.outgoers('edge').forEach(function (e) {
        if (!flow.has(e)) return;
        var t = e.target(), id = t.id();
        rank[id] = Math.max(rank[id] || 0, r + 1);
        if (--indeg[id] === 0) queue.push(t);
      });
    }
    return {rank: rank, order: order, deepest: deepest};
  }

  // top-down or left-right: whichever gives the drawing an aspect closer to the screen's
  function autoDirection(flow) {
    var ranks = ranksOf(flow), widest = {};
    ranks.order.forEach(function (n) { var r = ranks.rank[n.id()]; widest[r] = (widest[r] || 0) + 1; });
    var width = Math.max.apply(null, Object.keys(widest).map(function (k) { return widest[k]; }).concat([1]));
    var screen = Math.max(0.2, $('cy').clientWidth / Math.max(1, $('cy').clientHeight));
    var tb = (width * 110) / (ranks.deepest * 50), lr = (ranks.deepest * 170) / (width * 38);
    return Math.abs(Math.log(tb / screen)) <= Math.abs(Math.log(lr / screen)) ? 'TB' : 'LR';
  }

  // A layered drawing in linear time for big graphs (dagre's ranking and crossing reduction take
  // seconds on ~1000 nodes): longest-path ranks, each rank ordered by the mean place of its
  // predecessors (one barycenter sweep), nodes packed side by side by their own size.
  function layeredLayout(flow, dir, nodeSep, rankSep) {
    var ranks = ranksOf(flow), byRank = [], place = {}, pos = {};
    ranks.order.forEach(function (n) { (byRank[ranks.rank[n.id()]] = byRank[ranks.rank[n.id()]] || []).push(n); });
    var tb = dir === 'TB', along = 0;
    byRank.forEach(function (nodes) {
      nodes.forEach(function (n, i) {
        var preds = n.incomers('edge').filter(function (e) { return flow.has(e); }).sources();
        n.scratch('_bary', preds.length ? preds.reduce(function (s, m) { return s + place[m.id()]; }, 0) / preds.length : i);
      });
      nodes.sort(function (a, b) { return a.scratch('_bary') - b.scratch('_bary'); });
      var across = 0, thick = 0;
      nodes.forEach(function (n, i) {
        var w = tb ? n.data('w') : n.data('h'), h = tb ? n.data('h') : n.data('w');
        place[n.id()] = i;
        pos[n.id()] = {across: across + w / 2, along: along + h / 2};
        across += w + nodeSep;
        thick = Math.max(thick, h);
      });
      nodes.forEach(function (n) { pos[n.id()].across -= across / 2; });  // each rank centred on the axis
      along += thick + rankSep;
    });
    cy.batch(function () {
      flow.nodes().forEach(function (n) {
        var p = pos[n.id()] || {across: 0, along: 0};
        n.position(tb ? {x: p.across, y: p.along} : {x: p.along, y: p.across});
      });
    });
  }

  // ------------------------------------------------------------------ colour and size
  var PALETTE = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];
  function nodeMetric(n, key) {
    if (n.hasClass('module')) {
      var members = n.data('members'), s = n.data('sum');
      if (s[key] !== undefined) return s[key];
      return members.reduce(function (m, i) { var v = metricValue(state.view, i, key); return v > m ? v : m; }, 0);
    }
    return metricValue(state.view, n.data('index'), key);
  }
  function scaler(values) {
    var pos = values.filter(function (v) { return typeof v === 'number' && v > 0; });
    if (!pos.length) return function () { return null; };
    var lo = Math.min.apply(null, pos), hi = Math.max.apply(null, pos), log = hi / lo > 100;
    var f = log ? Math.log : function (v) { return v; }, a = f(lo), b = f(hi);
    return function (v) { return (typeof v === 'number' && v > 0) ? (b > a ? (f(v) - a) / (b - a) : 1) : null; };
  }
  function applyResources() {
    var nodes = cy.nodes();
    cy.batch(function () {
      nodes.forEach(function (n) {
        var kinds = n.hasClass('module') ? n.data('members').map(function (i) { return resourceOf(state.view, i); })
          : [resourceOf(state.view, n.data('index'))];
        var r = kinds.every(function (k) { return k === kinds[0]; }) ? kinds[0] : 'mixed';
        n.data({color: RESOURCE_COLOURS[r], fg: r === 'mixed' ? '#111' : '#fff', resource: r});
      });
    });
    $('legend').innerHTML = '<div>resource</div>' + Object.keys(RESOURCE_COLOURS).map(function (k) {
      return '<div><span class="swatch" style="border-color:' + RESOURCE_COLOURS[k] + ';border-top-width:8px"></span>' + k + '</div>';
    }).join('');
  }
  function applyMetrics() {
    var nodes = cy.nodes();
    var cvals = nodes.map(function (n) { return nodeMetric(n, state.colour); });
    var cs = scaler(cvals);
    var svals = state.size === 'none' ? null : nodes.map(function (n) { return nodeMetric(n, state.size); });
    var ss = svals ? scaler(svals) : null;
    cy.batch(function () {
      nodes.forEach(function (n, j) {
        var t = cs(cvals[j]), lines = n.data('label').split('\n');
        var w = Math.max(50, 5.6 * Math.max.apply(null, lines.map(function (l) { return l.length; })) + 10);
        var k = ss ? 1 + 1.5 * (ss(svals[j]) || 0) : 1;
        n.data({color: t === null ? '#eceff1' : PALETTE[Math.min(9, Math.floor(t * 10))], fg: t !== null && t < 0.55 ? '#fff' : '#111',
          w: w * k, h: (12 * lines.length + 8) * k});
      });
    });
    var hi = Math.max.apply(null, cvals.filter(function (v) { return typeof v === 'number'; }).concat([0]));
    $('legend').innerHTML = '<div>' + esc(labelOf(state.colour)) + ' (' + (hi > 0 ? 'log ' : '') + 'scale)</div>' +
      '<div class="bar" style="background:linear-gradient(to right,' + PALETTE.join(',') + ')"></div>' +
      '<div class="ends"><span>low</span><span>' + esc(fmtKey(state.colour.replace('map:', ''), hi)) + '</span></div>' +
      '<div><span class="swatch" style="border-color:#ef6c00;border-top-style:dashed"></span>back edge (loop)</div>' +
      '<div><span class="swatch" style="border-color:#d32f2f"></span>longest path</div>';
    if (state.colour === 'resource') applyResources();  // categorical: sizes as above, colours by resource
  }
  function labelOf(key) { for (var i = 0; i < METRICS.length; i++) if (METRICS[i].key === key) return METRICS[i].label; return key; }

  // ------------------------------------------------------------------ highlights: longest path, output sub-graph
  function repSet(dagIndices) {
    var out = {};
    dagIndices.forEach(function (d) {
      var i = state.view === 'loop' ? G.dag.nodes[d].layer : d;
      out[current.rep[i]] = true;
    });
    return out;
  }
  function applyHighlights() {
    cy.elements().removeClass('critical faded');
    var out = G.outputs[(state.output || G.outputs.length) - 1];
    if (!out) return;
    if (state.critical) {
      var path = out.critical.map(function (d) { return current.rep[state.view === 'loop' ? G.dag.nodes[d].layer : d]; });
      path.forEach(function (id, j) {
        cy.getElementById(id).addClass('critical');
        if (j) cy.edges().filter(function (e) { return e.data('source') === path[j - 1] && e.data('target') === id; }).addClass('critical');
      });
    }
    if (state.output) {
      var need = repSet(out.needed);
      cy.nodes().forEach(function (n) { if (!need[n.id()]) n.addClass('faded'); });
      cy.edges().forEach(function (e) { if (!need[e.data('source')] || !need[e.data('target')]) e.addClass('faded'); });
    }
    renderOutputInfo();
  }
  function renderOutputInfo() {
    if (!state.output) { $('output-info').innerHTML = ''; return; }
    var o = A.outputs[state.output - 1], pairs = [['MACs', o.macs, exact(o.macs)], ['latency (conv layers)', o.latency_layers, String(o.latency_layers)],
      ['graph size', o.graph_size_bytes, mb(o.graph_size_bytes)], ['params', o.params, exact(o.params)]];
    var row = outputRows()[state.output - 1];
    Object.keys(row).forEach(function (k) {
      if (k.indexOf('map_') === 0) pairs.push(['map: ' + k.slice(4), row[k], fmtKey(k, row[k])]);
    });
    var drawn = cy.nodes().not('.faded').length;
    $('output-info').innerHTML = '<h2>output ' + state.output + ' of ' + A.outputs.length + '</h2>' + kvTable(pairs, 'output-table') +
      '<p class="hint">' + drawn + ' of ' + cy.nodes().length + ' drawn nodes needed</p>';
  }
  function setOutput(n) { state.output = n; applyHighlights(); }

  // ------------------------------------------------------------------ side panel
  function shapesText(shapes) { return (shapes || []).map(function (s) { return s.join('x'); }).join(', '); }
  function inputShapes(i) {
    var data = G[state.view], out = [];
    data.edges.forEach(function (e) { if (e[1] === i && e[0] !== i) out.push(shapesText(data.nodes[e[0]].shapes)); });
    return out.filter(Boolean).join('; ');
  }
  function nodePairs(i) {
    var view = state.view, rec = view === 'loop' ? G.loop.nodes[i] : G.dag.nodes[i], layer = layerRecord(view, i);
    var pairs = [['name', rec.id], ['op', rec.op], ['kind', rec.kind], ['module', rec.scope || '(top level)'],
      ['input shapes', inputShapes(i)], ['output shapes', shapesText(rec.shapes)], ['calls', layer.calls, String(layer.calls)],
      ['params', layer.params, exact(layer.params)], ['macs', rec.macs, exact(rec.macs) + ' (' + human(rec.macs) + ')'],
      ['other_ops', rec.other_ops, exact(rec.other_ops)], ['graph_size_bytes', layer.graph_size_bytes, mb(layer.graph_size_bytes)]];
    if (view === 'loop') pairs.push(['latency_layers', rec.latency_layers, String(rec.latency_layers)]);
    else pairs.push(['depth (conv layers)', rec.depth, String(rec.depth)], ['layer', layer.id], ['layer macs (all calls)', layer.macs, exact(layer.macs)]);
    var ml = mapLayer[layer.id];
    if (M) pairs.push(['map: resource of this call', resourceOf(view, i), resourceOf(view, i)]);
    if (ml) Object.keys(ml).forEach(function (k) { if (k !== 'name' && k !== 'op') pairs.push(['map: ' + k, ml[k], fmtKey(k, ml[k])]); });
    return pairs;
  }
  function scopeButtons(scope) {
    return scopes(scope).map(function (s) { return '<button type="button" data-collapse="' + esc(s) + '">collapse ' + esc(s) + '</button>'; }).join('');
  }
  function showNode(n) {
    var html;
    if (n.hasClass('module')) {
      var s = n.data('sum');
      html = '<h2>module ' + esc(n.data('module')) + '</h2>' + kvTable([['nodes', n.data('members').length, String(n.data('members').length)],
        ['calls', n.data('calls').join(', '), n.data('calls').join(', ')], ['params', s.params, exact(s.params)],
        ['macs', s.macs, exact(s.macs) + ' (' + human(s.macs) + ')'], ['graph_size_bytes', s.graph_size_bytes, mb(s.graph_size_bytes)]], 'node-table') +
        '<button type="button" data-expand="' + esc(n.data('module')) + '">expand</button>';
    } else {
      var i = n.data('index'), rec = G[state.view].nodes[i];
      html = '<h2>' + esc(rec.id) + '</h2>' + kvTable(nodePairs(i).map(function (p) {
        return [p[0], p[1], p[2] === undefined ? String(p[1]) : p[2]];
      }), 'node-table') + scopeButtons(rec.scope);
    }
    $('node-info').innerHTML = html;
  }
  $('node-info').addEventListener('click', function (ev) {
    var c = ev.target.getAttribute('data-collapse'), x = ev.target.getAttribute('data-expand');
    if (c) { state.collapsed[c] = true; draw(); }
    if (x) { expand(x); }
  });
  function expand(scope) {
    Object.keys(state.collapsed).forEach(function (s) { if (s === scope || s.indexOf(scope + '.') === 0) delete state.collapsed[s]; });
    draw();
  }
  cy.on('tap', 'node', function (ev) { showNode(ev.target); });
  cy.on('dbltap', 'node.module', function (ev) { expand(ev.target.data('module')); });

  // ------------------------------------------------------------------ search
  function applySearch() {
    cy.nodes().removeClass('match');
    var q = state.search.trim().toLowerCase();
    if (!q) { $('search-info').textContent = ''; return; }
    var hits = cy.nodes().filter(function (n) {
      if (n.hasClass('module')) return n.data('module').toLowerCase().indexOf(q) >= 0 ||
        n.data('members').some(function (i) { return G[state.view].nodes[i].id.toLowerCase().indexOf(q) >= 0; });
      var rec = G[state.view].nodes[n.data('index')];
      return (rec.id + ' ' + rec.op + ' ' + rec.scope).toLowerCase().indexOf(q) >= 0;
    });
    hits.addClass('match');
    $('search-info').textContent = hits.length + ' match' + (hits.length === 1 ? '' : 'es');
    if (hits.length) cy.fit(hits, 60);
  }

  // ------------------------------------------------------------------ controls
  function fillSelect(sel, options, value) {
    sel.innerHTML = options.map(function (o) { return '<option value="' + esc(o[0]) + '">' + esc(o[1]) + '</option>'; }).join('');
    sel.value = value;
  }
  function fillDepth() {
    var opts = [['0', 'all expanded']];
    for (var d = 1; d <= maxDepth(); d++) opts.push([String(d), String(d)]);
    fillSelect($('depth-select'), opts, '0');
  }
  fillSelect($('colour-by'), METRICS.map(function (m) { return [m.key, m.label]; }), state.colour);
  fillSelect($('size-by'), [['none', 'same size']].concat(METRICS.map(function (m) { return [m.key, m.label]; })), 'none');
  fillSelect($('output-select'), [['0', 'all (longest path to output ' + G.outputs.length + ')']].concat(G.outputs.map(function (o) {
    return [String(o.index), 'output ' + o.index];
  })), '0');
  fillDepth();
  $('colour-by').addEventListener('change', function (e) { state.colour = e.target.value; applyMetrics(); });
  $('size-by').addEventListener('change', function (e) { state.size = e.target.value; applyMetrics(); });
  $('output-select').addEventListener('change', function (e) { setOutput(+e.target.value); });
  $('show-critical').addEventListener('change', function (e) { state.critical = e.target.checked; applyHighlights(); });
  $('depth-select').addEventListener('change', function (e) { collapseAtDepth(+e.target.value); draw(); });
  $('collapse-shared').addEventListener('click', function () { collapseShared(); draw(); });
  $('expand-all').addEventListener('click', function () { state.collapsed = {}; $('depth-select').value = '0'; draw(); });
  $('direction').addEventListener('change', function (e) { state.direction = e.target.value; draw(); });
  $('fit').addEventListener('click', function () { fitAll(20); });
  $('search').addEventListener('input', function (e) { state.search = e.target.value; applySearch(); });
  document.querySelectorAll('input[name=view]').forEach(function (r) {
    r.addEventListener('change', function (e) {
      state.view = e.target.value; state.collapsed = {}; fillDepth(); $('node-info').innerHTML = ''; draw();
    });
  });

  // large graphs open with their modules collapsed one level down (expand any by double-click)
  var LIMIT = 1500;
  for (var depth = maxDepth(); G.loop.nodes.length > LIMIT && depth > 0; depth--) {
    collapseAtDepth(depth);
    if (buildElements().filter(function (e) { return e.group === 'nodes'; }).length <= LIMIT) break;
  }
  draw();

  // a small API for scripts and tests
  window.graphcostView = {
    cy: cy, state: state, draw: draw, setOutput: setOutput,
    setView: function (v) { document.querySelector('input[name=view][value=' + v + ']').click(); },
    drawnNodeIds: function () { return cy.nodes().map(function (n) { return n.id(); }); },
    nodeScope: function (id) { var n = cy.getElementById(id); return n.hasClass('module') ? n.data('module') : G[state.view].nodes[n.data('index')].scope; },
    nodeName: function (id) { var n = cy.getElementById(id); return n.hasClass('module') ? n.data('module') : G[state.view].nodes[n.data('index')].id; },
    neededIds: function () { return cy.nodes().not('.faded').map(function (n) { return n.id(); }); },
    criticalIds: function () { return cy.nodes('.critical').map(function (n) { return n.id(); }); }
  };
  document.body.setAttribute('data-ready', 'true');
})();
