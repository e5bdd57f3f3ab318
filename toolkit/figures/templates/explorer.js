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
    card.appendChild(el('p', 'Sentences that activate it most (rank 1, 2, ...) and least (rank -1, -2, ...) per language, with their z in the language (the profile’s scale; the raw activation on hover):'));
    var st = table(['language', 'rank', 'label', 'z', 'sentence'], d.sentences.map(function (r) {
      var tr = el('tr');
      [r[0], r[1], r[3]].forEach(function (v) { tr.appendChild(el('td', v)); });
      var zc = el('td', num(r[4], 2), 'cell');
      // a sentence's z lies further out than a label mean's: the same diverging scale, saturating at |z| = 3
      zc.style.background = shade(r[4] === null ? null : r[4] / 3); zc.title = 'raw activation ' + num(r[5], 4);
      tr.appendChild(zc);
      var text = el('td', ex.texts[String(r[2])], 'text');
      text.dir = 'auto';  // right-to-left scripts read in their own direction
      tr.appendChild(text); return tr;
    }));
    st.className = 'sentences'; card.appendChild(st);
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
