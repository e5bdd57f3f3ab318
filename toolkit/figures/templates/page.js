(function () {
  var errors = document.getElementById('errors');
  function report(msg) {
    var li = document.createElement('li'); li.textContent = String(msg); errors.appendChild(li);
    errors.parentNode.hidden = false; document.body.dataset.failed = String(errors.children.length);
  }
  window.addEventListener('error', function (e) { report(e.message); });
  var consoleError = console.error;
  console.error = function () { report(Array.prototype.join.call(arguments, ' ')); consoleError.apply(console, arguments); };
  window.addEventListener('unhandledrejection', function (e) { report(e.reason); });
  var specs = JSON.parse(document.getElementById('specs').textContent);
  function visible(node) {
    for (var n = node; n && n.nodeType === 1; n = n.parentNode) {
      var st = getComputedStyle(n);
      if (st.display === 'none' || st.visibility === 'hidden' || Number(st.opacity) === 0) return false;
    }
    return true;
  }
  function overlaps(key) {  // text marks whose boxes touch or come within 2 px on a line ("300350"): listed in data-overlaps (should stay empty)
    var boxes = [];
    document.querySelectorAll('#chart-' + key + ' svg text').forEach(function (t) {
      if (!t.textContent.trim() || !visible(t)) return;
      var r = t.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) boxes.push([r, t.textContent]);
    });
    var found = [];
    for (var i = 0; i < boxes.length; i++) for (var j = i + 1; j < boxes.length; j++) {
      var a = boxes[i][0], b = boxes[j][0];
      var w = Math.min(a.right, b.right) - Math.max(a.left, b.left), h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > -2 && h > 1) found.push(key + ': ' + boxes[i][1] + ' / ' + boxes[j][1]);
    }
    if (found.length) document.body.dataset.overlaps = (document.body.dataset.overlaps ? document.body.dataset.overlaps + ' | ' : '') + found.join(' | ');
  }
  var done = 0;
  Object.keys(specs).forEach(function (key) {
    vegaEmbed('#chart-' + key, specs[key], {renderer: 'svg', actions: false})
      .then(function () {
        overlaps(key); done += 1; document.body.dataset.rendered = String(done);
        var target = /neuron=/.test(location.hash) && document.getElementById('explorer');
        if (target && done === Object.keys(specs).length) target.scrollIntoView();  // charts above moved it
      })
      .catch(function (err) { report(key + ': ' + err); });
  });
})();
