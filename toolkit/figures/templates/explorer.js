(function () {
  var ex = JSON.parse(document.getElementById('explorer-data').textContent);
  var card = document.getElementById('neuron-card');
  var search = document.getElementById('neuron-search');
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function num(v, d) { return (v === null || v === undefined) ? '--' : Number(v).toFixed(d); }
  function shade(z) {  // diverging: blue below 0, white at 0, red above, saturating at |z| = 1
    if (z === null) return '#ffffff';
    var t = Math.min(Math.abs(z), 1), c = Math.round(255 * (1 - 0.75 * t));
    return z >= 0 ? 'rgb(255,' + c + ',' + c + ')' : 'rgb(' + c + ',' + c + ',255)';
  }
  function table(head, rows) {
    var t = el('table'), h = el('tr');
    head.forEach(function (x) { h.appendChild(el('th', x)); });
    var th = el('thead'); th.appendChild(h); t.appendChild(th);
    var tb = el('tbody'); rows.forEach(function (r) { tb.appendChild(r); }); t.appendChild(tb);
    return t;
  }
  function show(n) {
    card.innerHTML = '';
    var d = ex.neurons[String(n)];
    card.dataset.neuron = String(n);
    if (!d) { card.appendChild(el('p', 'Layer ' + ex.layer + ' has no neuron ' + n + '.')); return; }
    card.appendChild(el('h3', 'Neuron ' + n + ' (layer ' + ex.layer + ', run ' + ex.run + ')'));
    var s = d.significance, facts = 'between-label variance ' + num(d.variance, 4) + (d.rank === null ? ', constant in every language' : ', rank ' + d.rank + ' of ' + ex.n_neurons);
    if (d.length) facts += '; length (definition 25): r ' + (d.length.r !== null && d.length.r >= 0 ? '+' : '') + num(d.length.r, 2) + ' with log tokens within language; without it, between-label variance ' + num(d.length.adjusted_variance, 4) + ' (' + Math.round(100 * d.length.share) + ' % of it is length)';
    if (s) facts += '; q ' + num(s.q_value, 4) + ', omega squared ' + num(s.omega_squared, 4) + ' (eta squared ' + num(s.eta_squared, 4) + ')' + (s.sensitive ? ', label-sensitive' : ', not label-sensitive');
    card.appendChild(el('p', facts, 'facts'));
    var langs = [], labels = [], z = {};
    d.profile.forEach(function (r) {
      if (labels.indexOf(r[0]) < 0) labels.push(r[0]);
      if (langs.indexOf(r[1]) < 0) langs.push(r[1]);
      z[r[0] + '|' + r[1]] = r[2];
    });
    langs.sort(); labels.sort();
    var cls = {}; d.classes.forEach(function (r) { cls[r[0]] = r[1] + (r[2] ? ' (' + r[2] + ')' : ''); });
    card.appendChild(el('p', 'Mean z per label and language, and the neuron’s class for the label:'));
    card.appendChild(table(['label'].concat(langs, ['class']), labels.map(function (l) {
      var tr = el('tr'); tr.appendChild(el('td', l));
      langs.forEach(function (g) {
        var v = z[l + '|' + g], td = el('td', num(v === undefined ? null : v, 2), 'cell');
        td.style.background = shade(v === undefined ? null : v); tr.appendChild(td);
      });
      tr.appendChild(el('td', cls[l] || '')); return tr;
    })));
    if (d.ablations.length) {
      card.appendChild(el('p', 'Ablations whose target set holds this neuron (change in macro-F1; rank 1 = the largest drop):'));
      card.appendChild(table(['ablation', 'mode', 'target size', 'language', 'change in macro-F1', 'rank'], d.ablations.map(function (a) {
        var tr = el('tr');
        [a.ablation_id, a.mode + ' at ' + a.positions, a.target_size, a.language, num(a.delta_macro_f1, 3),
         a.target_rank + ' of ' + (a.n_controls + 1)].forEach(function (v) { tr.appendChild(el('td', v)); });
        return tr;
      })));
    }
    if (d.histogram.length) {
      var dens = {}; d.density.forEach(function (r) { dens[r[0]] = r[1]; });
      var hist = {};
      d.histogram.forEach(function (r) {
        if (!hist[r[0]]) { hist[r[0]] = []; for (var b = 0; b < ex.bins; b++) hist[r[0]].push(0); }
        hist[r[0]][r[1]] = r[2];
      });
      card.appendChild(el('p', 'Density (share of sentences whose pooled value is above 0) and the histogram of its pooled values per language, ' + ex.bins + ' bins from ' + num(d.range[0], 3) + ' to ' + num(d.range[1], 3) + ' (the red line marks 0):'));
      card.appendChild(table(['language', 'density', 'histogram'], Object.keys(hist).sort().map(function (g) {
        var tr = el('tr'); tr.appendChild(el('td', g)); tr.appendChild(el('td', (100 * (dens[g] || 0)).toFixed(1) + ' %'));
        tr.appendChild(histogram(hist[g], d.range)); return tr;
      })));
    }
    if (d.neighbours.length) {
      card.appendChild(el('p', 'Nearest neurons of the layer by |r| (correlation of z across sentences; of label profiles):'));
      var nb = el('div', null, 'neighbours');
      [['sentences', 'across sentences'], ['profiles', 'label profiles']].forEach(function (w) {
        var line = el('div'); line.appendChild(el('span', w[1] + ': ', 'by'));
        d.neighbours.filter(function (r) { return r[0] === w[0]; }).forEach(function (r) {
          var a = el('a', r[1] + ' (' + (r[2] >= 0 ? '+' : '') + num(r[2], 2) + ')'); a.href = '#neuron=' + ex.layer + ':' + r[1];
          line.appendChild(a); line.appendChild(document.createTextNode(' '));
        });
        nb.appendChild(line);
      });
      card.appendChild(nb);
    }
    if (d.logit_effects.length) {
      card.appendChild(el('p', 'Tokens it writes towards (W_U · W_down[:, n], the direct path before the final norm):'));
      var pro = d.logit_effects.filter(function (r) { return r[0] === 'promotes'; }), sup = d.logit_effects.filter(function (r) { return r[0] === 'suppresses'; });
      card.appendChild(table(['promotes', 'logit', 'suppresses', 'logit'], pro.map(function (p, i) {
        var tr = el('tr'), q = sup[i] || ['', '', null];
        [p[1], num(p[2], 3), q[1], num(q[2], 3)].forEach(function (v) { tr.appendChild(el('td', v)); }); return tr;
      })));
    }
    var tv = d.token_values || {}, scale = 0;
    Object.keys(tv).forEach(function (sid) {
      var sp = (ex.tokens[sid] || {}).special || [];
      tv[sid].forEach(function (v, i) { if (!sp[i]) scale = Math.max(scale, Math.abs(v)); });
    });
    card.appendChild(el('p', 'Sentences that activate it most (rank 1, 2, ...) and least (rank -1, -2, ...) per language, with their z in the language (the profile’s scale; the raw activation on hover)' + (Object.keys(tv).length ? '. Where the model was rerun (the command neurons tokens), each token is coloured by the neuron’s value on it (full colour at |value| ' + num(scale, 2) + ', the value on hover), the largest boxed:' : ':')));
    var st = table(['language', 'rank', 'label', 'z', 'sentence'], d.sentences.map(function (r) {
      var tr = el('tr');
      [r[0], r[1], r[3]].forEach(function (v) { tr.appendChild(el('td', v)); });
      var zc = el('td', num(r[4], 2), 'cell');
      // a sentence's z lies further out than a label mean's: the same diverging scale, saturating at |z| = 3
      zc.style.background = shade(r[4] === null ? null : r[4] / 3); zc.title = 'raw activation ' + num(r[5], 4);
      tr.appendChild(zc);
      var sid = String(r[2]), text = el('td', tv[sid] && ex.tokens[sid] ? null : ex.texts[sid], 'text');
      if (tv[sid] && ex.tokens[sid]) highlight(text, ex.tokens[sid], tv[sid], d.token_best[sid], scale);
      text.dir = 'auto';  // right-to-left scripts read in their own direction
      tr.appendChild(text); return tr;
    }));
    st.className = 'sentences'; card.appendChild(st);
  }
  function histogram(counts, range) {  // one language's bars, as tall as its own fullest bin; a line at 0
    var td = el('td'), ns = 'http://www.w3.org/2000/svg', svg = document.createElementNS(ns, 'svg');
    var w = 6, h = 28, top = Math.max.apply(null, counts.concat([1]));
    svg.setAttribute('width', ex.bins * w); svg.setAttribute('height', h);
    for (var b = 0; b < ex.bins; b++) {
      var n = counts[b], r = document.createElementNS(ns, 'rect'), bh = Math.round((h - 2) * n / top);
      r.setAttribute('x', b * w); r.setAttribute('y', h - bh); r.setAttribute('width', w - 1); r.setAttribute('height', bh);
      r.setAttribute('fill', '#4c78a8');
      var t = document.createElementNS(ns, 'title'); t.textContent = n + ' sentences'; r.appendChild(t);
      svg.appendChild(r);
    }
    if (range && range[0] < 0 && range[1] > 0) {  // where 0 falls: the density counts what lies right of it
      var zero = document.createElementNS(ns, 'line'), x = ex.bins * w * (0 - range[0]) / (range[1] - range[0]);
      zero.setAttribute('x1', x); zero.setAttribute('x2', x); zero.setAttribute('y1', 0); zero.setAttribute('y2', h);
      zero.setAttribute('stroke', '#d62728'); zero.setAttribute('stroke-width', 1.5);
      var zt = document.createElementNS(ns, 'title'); zt.textContent = 'value 0'; zero.appendChild(zt);
      svg.appendChild(zero);
    }
    svg.setAttribute('class', 'hist'); td.appendChild(svg); return td;
  }
  function highlight(cell, tokens, values, best, scale) {  // the pieces on their values; BEST: view token_evidence's is_max
    tokens.segments.forEach(function (p) {
      if (p[1] === null) { cell.appendChild(document.createTextNode(p[0])); return; }
      var span = el('span', p[0], tokens.special[p[1]] ? 'tok special' : (p[1] === best ? 'tok best' : 'tok'));
      var v = values[p[1]];
      span.style.background = shade(scale > 0 ? v / scale : 0); span.title = 'value ' + num(v, 3);
      cell.appendChild(span);
    });
  }
  function fromHash() {
    var m = location.hash.match(/neuron=(?:(\d+):)?(\d+)/);
    if (!m) return;
    if (m[1] !== undefined && Number(m[1]) !== ex.layer) {
      card.innerHTML = ''; card.appendChild(el('p', 'This report covers layer ' + ex.layer + ', not layer ' + m[1] + '.'));
      return;
    }
    show(Number(m[2])); search.value = m[2];
    document.getElementById('explorer').scrollIntoView();
  }
  function go() {
    var m = String(search.value).trim().match(/^(?:(\d+):)?(\d+)$/);
    if (m) location.hash = 'neuron=' + ex.layer + ':' + m[2];
  }
  search.addEventListener('change', go);
  search.addEventListener('keydown', function (e) { if (e.key === 'Enter') go(); });
  var quick = document.getElementById('quick');
  quick.appendChild(document.createTextNode('top variance: '));
  Object.keys(ex.neurons).sort(function (a, b) { return ex.neurons[a].rank - ex.neurons[b].rank; }).slice(0, 10)
    .forEach(function (n) { var a = el('a', n); a.href = '#neuron=' + ex.layer + ':' + n; quick.appendChild(a); });
  window.addEventListener('hashchange', fromHash);
  fromHash();
})();
