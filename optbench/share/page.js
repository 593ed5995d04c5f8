// optbench report: label toggles, sortable tables, values under the pointer. No network, no libraries.
(function () {
  "use strict";
  var hidden = {};

  function each(sel, fn, root) { Array.prototype.forEach.call((root || document).querySelectorAll(sel), fn); }

  // ---- a checkbox per label hides its lines and bands in every figure
  each("input[data-label]", function (box) {
    box.addEventListener("change", function () {
      var i = box.getAttribute("data-label");
      hidden[i] = !box.checked;
      each('svg [data-label="' + i + '"]', function (el) { el.style.display = box.checked ? "" : "none"; });
    });
  });

  // ---- click a header to sort its table's rows (numbers by value, text alphabetically, blanks last)
  function key(cell) {
    var v = cell.getAttribute("data-v");
    return v === null ? { n: false, t: cell.textContent.trim() } : { n: true, v: parseFloat(v) };
  }
  function compare(a, b) {
    if (a.n && b.n) { return a.v - b.v; }
    if (a.n !== b.n) { return a.n ? -1 : 1; }
    return a.t < b.t ? -1 : a.t > b.t ? 1 : 0;
  }
  each("table.sortable", function (table) {
    each("thead th", function (th, col) {
      th.querySelector("button").addEventListener("click", function () {
        var up = th.getAttribute("aria-sort") !== "ascending";
        each("thead th", function (other) { other.setAttribute("aria-sort", "none"); }, table);
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
          return { row: row, k: key(row.cells[col]), i: i };
        });
        rows.sort(function (a, b) { return (up ? 1 : -1) * compare(a.k, b.k) || a.i - b.i; });
        rows.forEach(function (r) { body.appendChild(r.row); });
      });
    }, table);
  });

  // ---- the values of every shown label at the epoch under the pointer
  var names = JSON.parse(document.getElementById("label-names").textContent);
  function nearest(xs, x) {
    var lo = 0, hi = xs.length - 1;
    while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (xs[mid] < x) { lo = mid; } else { hi = mid; } }
    return Math.abs(xs[hi] - x) < Math.abs(xs[lo] - x) ? hi : lo;
  }
  function fmt(v, percent) {
    if (v === null) { return "–"; }
    return percent ? (100 * v).toFixed(1) + "%" : Number(v.toPrecision(4)).toString();
  }
  function scale(f, lim, log) {
    return log ? Math.pow(10, Math.log10(lim[0]) + f * (Math.log10(lim[1]) - Math.log10(lim[0])))
               : lim[0] + f * (lim[1] - lim[0]);
  }
  each("figure[data-fig]", function (fig) {
    var panels = JSON.parse(document.getElementById(fig.getAttribute("data-fig")).textContent);
    var svg = fig.querySelector("svg");
    var out = fig.querySelector(".readout");
    var idle = out.textContent;
    svg.addEventListener("pointermove", function (e) {
      var ctm = svg.getScreenCTM();
      if (!ctm) { return; }
      var pt = svg.createSVGPoint();
      pt.x = e.clientX; pt.y = e.clientY;
      var p = pt.matrixTransform(ctm.inverse());
      var text = idle;
      panels.forEach(function (panel) {
        var b = panel.box;
        if (p.x < b[0] || p.x > b[2] || p.y < b[1] || p.y > b[3]) { return; }
        var x = scale((p.x - b[0]) / (b[2] - b[0]), panel.xlim, panel.xlog);
        var parts = [];
        var at = null;
        panel.series.forEach(function (s) {
          if (hidden[s.label]) { return; }
          var i = nearest(s.x, x);
          at = s.x[i];
          parts.push(names[s.label] + (s.val ? " (val)" : "") + " " + fmt(s.y[i], panel.percent));
        });
        if (parts.length) { text = (panel.xname || "x") + " " + fmt(at, false) + ": " + parts.join(", "); }
      });
      out.textContent = text;
    });
    svg.addEventListener("pointerleave", function () { out.textContent = idle; });
  });
}());
