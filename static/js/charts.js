// Draws every KPI trend chart on the page with uPlot (vendored), from the JSON the server
// embedded next to it; again after htmx swaps a chart in (range buttons).
(function () {
  "use strict";

  function line(value, count) {
    return value === null || value === undefined ? null : new Array(count).fill(value);
  }

  function draw(element) {
    if (element.dataset.drawn || typeof uPlot === "undefined") return;
    var source = document.getElementById(element.dataset.chart);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var points = data.points;
    var xs = points.map(function (p) { return p[0] + data.bucket_seconds / 2; });
    var n = xs.length;
    var series = [{}, { label: "avg", stroke: "#1d4ed8", width: 2 },
      { label: "min", stroke: "#93c5fd", width: 1 }, { label: "max", stroke: "#93c5fd", width: 1 }];
    var columns = [xs, points.map(function (p) { return p[1]; }),
      points.map(function (p) { return p[2]; }), points.map(function (p) { return p[3]; })];
    [["target", data.target, "#166534"], ["warning", data.warning, "#b45309"],
     ["critical", data.critical, "#b91c1c"]].forEach(function (ref) {
      var values = line(ref[1], n);
      if (values) {
        series.push({ label: ref[0], stroke: ref[2], width: 1, dash: [6, 4], points: { show: false } });
        columns.push(values);
      }
    });
    var width = Math.max(280, element.clientWidth || 600);
    element.dataset.drawn = "1";
    element.innerHTML = "";
    if (!n) {
      element.innerHTML = '<p class="muted">No measurement in this range.</p>';
      return;
    }
    new uPlot({
      width: width, height: 240, series: series,
      scales: { x: { time: true, range: [data.start, data.end] } },
      axes: [{}, { label: data.unit || "" }],
    }, columns, element);
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target.parentNode || document); });
})();
