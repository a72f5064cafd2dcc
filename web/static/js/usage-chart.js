// Utilization charts with the vendored uPlot: the data is the page's
// <script type="application/json" id="chart-data"> (the CSP allows no inline script).
// Each chart element gets data-series (the names drawn) and data-drawn once drawn.
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof uPlot === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  if (!data) { return; }
  var COLOURS = ["#1f5fbf", "#1d7a3a", "#9a6700", "#b3261e", "#6a3fb5", "#0f7c85",
                 "#c2410c", "#4b5563"];

  function width(el) { return Math.max(320, el.clientWidth || 800); }

  function constant(value, n) {
    var out = [];
    for (var i = 0; i < n; i++) { out.push(value); }
    return out;
  }

  // Shade each event's span: over-utilization red, under-utilization amber.
  function eventBands(events) {
    return function (u) {
      var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
      var last = u.data[0][u.data[0].length - 1];
      ctx.save();
      (events || []).forEach(function (e) {
        var x0 = u.valToPos(e.start, "x", true);
        var x1 = u.valToPos(e.end === null ? last : e.end, "x", true);
        ctx.fillStyle = e.kind.indexOf("under") === 0 ? "rgba(154,103,0,0.15)"
                                                       : "rgba(179,38,30,0.15)";
        ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
      });
      ctx.restore();
    };
  }

  function draw(el, title, names, columns, events) {
    var series = [{}];
    names.forEach(function (name, i) {
      series.push({label: name, stroke: COLOURS[i % COLOURS.length], width: 2,
                   dash: name.indexOf("leased") >= 0 ? [6, 4] : undefined});
    });
    var opts = {title: title, width: width(el), height: 260, series: series,
                hooks: {drawClear: [eventBands(events)]}, scales: {x: {time: true}}};
    new uPlot(opts, [data.t].concat(columns), el);
    el.setAttribute("data-series", names.join(","));
    el.setAttribute("data-drawn", "1");
  }

  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var kind = el.getAttribute("data-chart"), n = data.t.length;
    if (kind === "lease-sessions") {
      var names = ["sessions peak", "sessions average"], cols = [data.sessions_peak, data.sessions_avg];
      if (data.sessions_leased) { names.push("sessions leased"); cols.push(constant(data.sessions_leased, n)); }
      draw(el, "Sessions online", names, cols, data.events);
    } else if (kind === "lease-traffic") {
      var tnames = ["Mbit/s average", "Mbit/s busiest 5 min"], tcols = [data.mbps_avg, data.mbps_peak];
      if (data.mbps_leased) { tnames.push("Mbit/s leased"); tcols.push(constant(data.mbps_leased, n)); }
      draw(el, "Traffic", tnames, tcols, data.events);
    } else if (kind === "groups") {
      draw(el, "Average sessions online", data.groups.map(function (g) { return g.name; }),
           data.groups.map(function (g) { return g.online_avg; }), []);
    }
  });
})();
