/* vpop portal charts: every element with data-chart and data-source becomes a uPlot
   time-series chart of the JSON that data-source returns (no inline script: the
   Content-Security-Policy is default-src 'self'). */
(function () {
  "use strict";
  var KINDS = {
    rates: { series: [["availability", "Availability %", "#1f5fbf"], ["success", "Auth success %", "#1d7a3a"]],
             range: [0, 100] },
    times: { series: [["p50_ms", "Median ms", "#9a6700"], ["p99_ms", "p99 ms", "#b3261e"]] }
  };
  var sources = {};

  function load(url) {
    if (!sources[url]) {
      sources[url] = fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (reply) {
          if (!reply.ok) { throw new Error("HTTP " + reply.status); }
          return reply.json();
        });
    }
    return sources[url];
  }

  function draw(element) {
    var kind = KINDS[element.dataset.chart];
    if (!kind) { return; }
    load(element.dataset.source).then(function (data) {
      var empty = document.getElementById("quality-empty");
      if (!data.time.length) {
        if (empty) { empty.hidden = false; }
        element.dataset.drawn = "empty";
        return;
      }
      var series = [{}];
      var values = [data.time];
      kind.series.forEach(function (entry) {
        series.push({ label: entry[1], stroke: entry[2], width: 2, spanGaps: false });
        values.push(data[entry[0]]);
      });
      var options = {
        width: Math.max(320, element.clientWidth || 800), height: 260, series: series,
        scales: kind.range ? { y: { range: kind.range } } : {},
        axes: [{}, {}]
      };
      element.textContent = "";
      new uPlot(options, values, element);
      element.dataset.drawn = String(data.time.length);
      element.dataset.series = kind.series.map(function (entry) { return entry[0]; }).join(",");
    }).catch(function (error) {
      element.textContent = "The chart could not be loaded (" + error.message + ").";
      element.dataset.drawn = "error";
    });
  }

  document.querySelectorAll("[data-chart][data-source]").forEach(draw);
})();
