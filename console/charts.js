// What a trained model's record holds, drawn: the learning curve (training_metrics.learning_curve,
// a line chart with uPlot, vendored), the confusion matrix (performance_metrics.confusion_matrix and
// confusion_matrix_labels, a heat grid) and feature importance (performance_metrics.feature_importance,
// sorted bars). Each has its numbers as text too (a table), for screen readers and for copying.

import uPlot from "./vendor/uplot/uPlot.esm.js";
import { h, number } from "./dom.js";

const TRAIN_COLOUR = "#1a56b0";
const VALIDATION_COLOUR = "#b4361b";

/** A learning-curve figure: `points` are {epoch, training_loss, validation_loss}. Returns {figure, update}. */
export function learningCurve(points, { unit = "epoch", loss = "loss", caption = "Learning curve" } = {}) {
  const plot = h("div", { class: "plot", role: "img", "aria-label": `${caption}: ${loss} per ${unit}` });
  const tableBody = h("tbody");
  const count = h("span", { class: "muted" });
  const figure = h("figure", { class: "curve", id: "learning-curve" },
    h("figcaption", {}, caption, " ", count),
    plot,
    h("details", {}, h("summary", {}, "Learning curve as a table"),
      h("table", { id: "learning-curve-data" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, unit),
        h("th", { scope: "col" }, `training ${loss}`), h("th", { scope: "col" }, `validation ${loss}`))), tableBody)));
  let chart = null;
  let data = [];

  function draw() {
    figure.dataset.points = String(data.length);
    count.textContent = data.length ? `(${data.length} point${data.length === 1 ? "" : "s"})` : "(no points yet)";
    tableBody.replaceChildren(...data.map((p) => h("tr", {}, h("td", {}, number(p.epoch)),
      h("td", {}, number(p.training_loss)), h("td", {}, number(p.validation_loss)))));
    const columns = [data.map((p) => p.epoch), data.map((p) => finite(p.training_loss)),
      data.map((p) => finite(p.validation_loss))];
    if (chart) {
      chart.setData(columns);
      return;
    }
    if (!plot.isConnected || !data.length) return;
    chart = new uPlot({
      width: Math.max(plot.clientWidth, 240),
      height: 240,
      scales: { x: { time: false } },
      legend: { live: false },
      series: [
        { label: unit },
        { label: `training ${loss}`, stroke: TRAIN_COLOUR, width: 2, points: { show: data.length < 40 } },
        { label: `validation ${loss}`, stroke: VALIDATION_COLOUR, width: 2, dash: [6, 3], points: { show: data.length < 40 } },
      ],
      axes: [{ label: unit, stroke: "#333" }, { label: loss, stroke: "#333" }],
    }, columns, plot);
    new ResizeObserver(() => chart && plot.clientWidth && chart.setSize({ width: plot.clientWidth, height: 240 }))
      .observe(plot);
  }

  return {
    figure,
    /** Replace the points (or append one with `add`), redrawing. Call once the figure is in the page. */
    set(next) {
      data = [...next].sort((a, b) => a.epoch - b.epoch);
      draw();
    },
    add(point) {
      data = [...data.filter((p) => p.epoch !== point.epoch), point].sort((a, b) => a.epoch - b.epoch);
      draw();
    },
  };
}

function finite(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** The confusion matrix as a table whose cells are shaded by count; rows actual, columns predicted. */
export function confusionGrid(matrix, labels) {
  const max = Math.max(1, ...matrix.flat().filter((v) => typeof v === "number"));
  const head = h("tr", {}, h("th", { scope: "col" }, h("span", { class: "sr-only" }, "actual class, by row; "),
    "actual \\ predicted"), labels.map((label) => h("th", { scope: "col" }, String(label))));
  const rows = matrix.map((row, i) => h("tr", {}, h("th", { scope: "row" }, String(labels[i])),
    row.map((count, j) => {
      const share = (typeof count === "number" ? count : 0) / max;
      const shade = cellShade(share);
      return h("td", {
        class: i === j ? "diagonal" : null,
        style: { backgroundColor: shade.background, color: shade.text },
        title: `actual ${labels[i]}, predicted ${labels[j]}: ${count}`,
      }, number(count));
    })));
  return h("table", { class: "heat" },
    h("caption", {}, "Test rows by actual class (rows) and predicted class (columns); darker is more."),
    h("thead", {}, head), h("tbody", {}, rows));
}

// A cell's blue, lighter for fewer rows, and whichever of white or black text contrasts more with it
// (WCAG luminance: at least 4.5:1 either way along this scale).
export function cellShade(share) {
  const lightness = 0.97 - 0.55 * share;
  const chroma = (1 - Math.abs(2 * lightness - 1)) * 0.7;
  const hue = 215 / 60;
  const x = chroma * (1 - Math.abs((hue % 2) - 1));
  const m = lightness - chroma / 2;
  const [r, g, b] = [m, x + m, chroma + m]; // hue 180-240: (0, x, chroma)
  const linear = (c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  const onWhite = 1.05 / (luminance + 0.05);
  const onDark = (luminance + 0.05) / 0.05; // black
  const css = (c) => Math.round(c * 255);
  return { background: `rgb(${css(r)}, ${css(g)}, ${css(b)})`, text: onWhite > onDark ? "#fff" : "#000" };
}

/** Feature importance as bars, most important first. `importance` maps feature → share (or a list of pairs). */
export function importanceBars(importance) {
  const pairs = (Array.isArray(importance) ? importance : Object.entries(importance))
    .map((entry) => (Array.isArray(entry) ? entry : [entry.feature ?? entry.name, entry.importance ?? entry.value]))
    .filter(([, value]) => typeof value === "number")
    .sort((a, b) => b[1] - a[1]);
  const max = Math.max(1e-12, ...pairs.map(([, value]) => Math.abs(value)));
  return h("ol", { class: "bars", id: "feature-importance" }, pairs.map(([name, value]) => h("li", {},
    h("span", { class: "bar-label" }, String(name)),
    h("span", { class: "bar-track", "aria-hidden": "true" },
      h("span", { class: "bar-fill", style: { width: `${(100 * Math.max(0, value)) / max}%` } })),
    h("span", { class: "bar-value" }, number(value, 3)))));
}
