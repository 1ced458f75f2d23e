// Draws every KPI trend chart on the page with uPlot (vendored), from the JSON the server
// embedded next to it; again after htmx swaps a chart in (range buttons, custom range).
// Charts follow their container's width (ResizeObserver + setSize), take their colours from
// the CSS variables --chart-* (light and dark themes; the fallbacks below when one is empty)
// and are drawn again when the colour scheme changes. Values show the KPI's decimals, times
// the user's time zone (the server says which).
(function () {
  "use strict";

  var HEIGHT = 240;
  var FALLBACK = {
    line: "#1d4ed8", fill: "#93c5fd", target: "#166534", warn: "#b45309",
    crit: "#b91c1c", grid: "rgba(0,0,0,0.07)", axis: "#374151",
  };
  var charts = [];  // {element, plot, observer}

  function colours() {
    var style = getComputedStyle(document.documentElement);
    var result = {};
    Object.keys(FALLBACK).forEach(function (name) {
      var value = style.getPropertyValue("--chart-" + name).trim();
      result[name] = value || FALLBACK[name];
    });
    return result;
  }

  function line(value, count) {
    return value === null || value === undefined ? null : new Array(count).fill(value);
  }

  function formatter(decimals) {
    return function (value) {
      if (value === null || value === undefined || !isFinite(value)) return "–";
      return Number(value).toLocaleString(undefined, {
        minimumFractionDigits: decimals, maximumFractionDigits: decimals,
      });
    };
  }

  function build(element, data) {
    var c = colours();
    var format = formatter(typeof data.decimals === "number" ? data.decimals : 2);
    var points = data.points;
    var xs = points.map(function (p) { return p[0] + data.bucket_seconds / 2; });
    var n = xs.length;
    var value = function (u, v) { return format(v); };
    var series = [{},
      { label: "avg", stroke: c.line, width: 2, value: value },
      { label: "min", stroke: c.fill, width: 1, value: value },
      { label: "max", stroke: c.fill, width: 1, value: value }];
    var columns = [xs, points.map(function (p) { return p[1]; }),
      points.map(function (p) { return p[2]; }), points.map(function (p) { return p[3]; })];
    [["target", data.target, c.target], ["warning", data.warning, c.warn],
     ["critical", data.critical, c.crit]].forEach(function (ref) {
      var values = line(ref[1], n);
      if (values) {
        series.push({ label: ref[0], stroke: ref[2], width: 1, dash: [6, 4], points: { show: false }, value: value });
        columns.push(values);
      }
    });
    var axis = { stroke: c.axis, grid: { stroke: c.grid }, ticks: { stroke: c.grid } };
    var options = {
      width: Math.max(200, element.clientWidth || 600), height: HEIGHT, series: series,
      scales: { x: { time: true, range: [data.start, data.end] } },
      axes: [Object.assign({}, axis),
        Object.assign({}, axis, {
          label: data.unit || "",
          values: function (u, ticks) { return ticks.map(format); },
        })],
    };
    if (data.tz && uPlot.tzDate) {
      options.tzDate = function (ts) { return uPlot.tzDate(new Date(ts * 1000), data.tz); };
    }
    return new uPlot(options, columns, element);
  }

  function forget(element) {
    charts = charts.filter(function (chart) {
      if (chart.element !== element && document.contains(chart.element)) return true;
      if (chart.observer) chart.observer.disconnect();
      if (chart.plot) chart.plot.destroy();
      return false;
    });
  }

  function draw(element, again) {
    if ((element.dataset.drawn && !again) || typeof uPlot === "undefined") return;
    var source = document.getElementById(element.dataset.chart);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    forget(element);
    element.dataset.drawn = "1";
    element.innerHTML = "";
    if (!data.points.length) {
      element.innerHTML = '<p class="muted">No measurement in this range.</p>';
      return;
    }
    var chart = { element: element, plot: build(element, data), observer: null };
    if (typeof ResizeObserver !== "undefined") {
      var width = element.clientWidth;
      chart.observer = new ResizeObserver(function () {
        var now = element.clientWidth;
        if (now && now !== width) {
          width = now;
          chart.plot.setSize({ width: Math.max(200, now), height: HEIGHT });
        }
      });
      chart.observer.observe(element);
    }
    charts.push(chart);
  }

  function drawAll(root, again) {
    (root || document).querySelectorAll("[data-chart]").forEach(function (element) {
      draw(element, again);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) {
    drawAll(event.target.parentNode || document);
  });
  if (window.matchMedia) {
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    var redraw = function () { drawAll(document, true); };
    if (scheme.addEventListener) scheme.addEventListener("change", redraw);
    else if (scheme.addListener) scheme.addListener(redraw);
  }
})();
