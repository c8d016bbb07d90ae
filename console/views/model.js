// One model: its fields, metrics, learning curve, confusion matrix, feature importance, versions and runs,
// the actions the caller's role allows (each confirmed first), and live updates from the model's
// WebSocket events (status changes, and a running training's losses drawn as they arrive).

import { confusionGrid, importanceBars, learningCurve } from "../charts.js";
import { h, number, replace, statusBadge, when } from "../dom.js";
import { connectLive, LIVE_TEXT } from "../live.js";
import { canWrite } from "../session.js";
import { confirmAction } from "../ui.js";
import { primaryMetric, scalarMetrics } from "./metrics.js";

const UNTRAINABLE = ["training", "archived", "deprecated"];

function section(id, title, ...children) {
  return h("section", { "aria-labelledby": `${id}-heading`, class: "card" },
    h("h2", { id: `${id}-heading` }, title), ...children);
}

export function modelPage(ctx, project, modelId) {
  const projectHref = `#/projects/${encodeURIComponent(project)}`;
  ctx.setCrumbs([{ label: "Projects", href: "#/" }, { label: project, href: projectHref }, { label: modelId }]);
  const writer = canWrite(ctx.who, project);
  const page = { model: null, runs: [], versions: [], liveRun: null, livePoints: [], tuning: null, gone: false };
  const parts = {
    header: h("div", { class: "title-row" }),
    actions: h("div", { class: "actions", id: "actions", role: "group", "aria-label": "Actions" }),
    fields: h("div"),
    metrics: h("div"),
    curve: h("div"),
    confusion: h("div"),
    importance: h("div"),
    versions: h("div"),
    runs: h("div"),
  };
  const live = h("p", { class: "live", id: "live-state" }, LIVE_TEXT.connecting);
  let curve = null;
  let socket = null;
  let closed = false;
  replace(ctx.main, h("p", { class: "muted" }, "Loading the model…"));

  let asked = 0; // only the latest fetch is applied: live events and actions may each ask for one

  async function fetchAll() {
    const ticket = ++asked;
    const [model, runs, versions] = await Promise.all([
      ctx.api.call("getModel", { params: { model_id: modelId } }),
      ctx.api.call("listRuns", { params: { model_id: modelId }, query: { limit: 20 } }),
      ctx.api.call("listVersions", { params: { model_id: modelId }, query: { limit: 20 } }),
    ]);
    if (ticket !== asked) return false;
    page.model = model;
    page.runs = runs.runs;
    page.versions = versions.versions;
    if (model.status === "training" && page.liveRun !== model.training_task_id) {
      page.liveRun = model.training_task_id;
      page.livePoints = [];
    }
    return true;
  }

  async function reload() {
    try {
      if (await fetchAll() && !closed) render();
    } catch (error) {
      ctx.showError(error);
    }
  }

  function notFound(error) {
    ctx.setCrumbs([{ label: "Projects", href: "#/" }, { label: project, href: projectHref }, { label: "Not found" }]);
    replace(ctx.main, h("h1", { id: "not-found" }, "Model not found"),
      h("p", {}, error.message), h("p", {}, h("a", { href: projectHref }, `Back to project ${project}`)));
  }

  function render() {
    const model = page.model;
    ctx.setCrumbs([{ label: "Projects", href: "#/" }, { label: project, href: projectHref }, { label: model.name }]);
    renderHeader(model);
    renderActions(model);
    renderFields(model);
    renderMetrics(model);
    renderCurve(model);
    renderConfusion(model);
    renderImportance(model);
    renderVersions();
    renderRuns();
  }

  function renderHeader(model) {
    replace(parts.header,
      h("h1", { id: "model-name" }, model.name),
      h("p", { class: "status-line", "aria-live": "polite" }, "Status ",
        statusBadge(model.status, { id: "model-status", dataset: { status: model.status } })),
      h("p", { class: "muted" }, `${model.type} · `, h("span", { id: "model-version" },
        model.version ? `version ${model.version}` : "never trained")),
      live);
  }

  function actionButton(id, label, handler, { disabled = false, danger = false } = {}) {
    return h("button", { type: "button", id, class: danger ? "danger" : null, disabled: disabled || page.gone,
      onclick: handler }, label);
  }

  function renderActions(model) {
    if (!writer) {
      replace(parts.actions, h("p", { class: "muted", id: "read-only" },
        "You may read this project; your role has no actions here."));
      return;
    }
    const training = model.status === "training";
    replace(parts.actions,
      actionButton("train", "Train", train, { disabled: UNTRAINABLE.includes(model.status) }),
      training ? actionButton("cancel-training", "Cancel training", cancel) : null,
      model.status !== "archived" && !training ? actionButton("archive", "Archive", archive) : null,
      actionButton("delete", "Delete", remove, { disabled: training, danger: true }));
  }

  async function act(work, done = "Done.") {
    ctx.showError(null);
    try {
      const answer = await work();
      if (answer && answer.id === modelId) {
        page.model = answer;
        render();
      }
      ctx.notify(done);
      await reload();
    } catch (error) {
      ctx.showError(error);
    }
  }

  async function train() {
    let configs = [];
    try {
      configs = (await ctx.api.call("listStorageConfigs", { query: { project_id: project, limit: 100 } })).storage_configs;
    } catch (error) {
      ctx.showError(error);
      return;
    }
    const body = h("fieldset", {}, h("legend", {}, "Training data"),
      configs.length ? configs.map((config) => h("label", { class: "check" },
        h("input", { type: "checkbox", name: "storage", value: config.id }),
        ` ${config.name} `, h("code", {}, config.uri)))
        : h("p", { class: "muted" }, "This project has no storage configs."),
      h("p", { class: "help" }, "With none picked, the trainer generates synthetic data from the ontology."));
    const storageIds = await confirmAction({
      title: `Train ${page.model.name}?`, body, confirmLabel: "Start training",
      collect: (form) => [...form.querySelectorAll("input[name=storage]:checked")].map((input) => input.value),
    });
    if (storageIds === null) return;
    await act(() => ctx.api.call("train", { body: { model_id: modelId, storage_ids: storageIds } }),
      "Training started.");
  }

  async function cancel() {
    if (!await confirmAction({ title: "Cancel the running training?", confirmLabel: "Cancel training", danger: true,
      body: h("p", {}, "The model returns to the status it had before the run; the run's results are discarded.") })) return;
    await act(() => ctx.api.call("cancelTraining", { params: { model_id: modelId }, body: {} }), "Training cancelled.");
  }

  async function archive() {
    if (!await confirmAction({ title: `Archive ${page.model.name}?`, confirmLabel: "Archive",
      body: h("p", {}, "An archived model cannot be trained until it is set back to draft.") })) return;
    await act(() => ctx.api.call("updateModel", { params: { model_id: modelId }, body: { status: "archived" } }),
      "Model archived.");
  }

  async function remove() {
    if (!await confirmAction({ title: `Delete ${page.model.name}?`, confirmLabel: "Delete for good", danger: true,
      body: h("p", {}, "The model, its runs, versions, artifacts and jobs are all removed. This cannot be undone.") })) return;
    ctx.showError(null);
    try {
      await ctx.api.call("deleteModel", { params: { model_id: modelId } });
      ctx.notify("Model deleted.");
      location.hash = projectHref;
    } catch (error) {
      ctx.showError(error);
    }
  }

  async function promote(version) {
    if (!await confirmAction({ title: `Promote version ${version}?`, confirmLabel: `Promote v${version}`,
      body: h("p", {}, `The model will serve version ${version}: its artifact and metrics become current.`) })) return;
    await act(() => ctx.api.call("promoteVersion", { params: { model_id: modelId, version } }),
      `Version ${version} promoted.`);
  }

  function renderFields(model) {
    const rows = [
      ["Description", model.description || "—"],
      ["Model id", h("code", {}, model.id)],
      ["Project", model.project_id],
      ["Ontology", h("code", {}, model.ontology_id)],
      ["Type", model.type],
      ["Current version", model.version ? `v${model.version}` : "none"],
      ["Created", when(model.created_at)],
      ["Updated", when(model.updated_at)],
      ["Trained", when(model.trained_at)],
      ["Artifact", model.model_artifact_path ? h("code", {}, model.model_artifact_path) : "—"],
      ["Current run", model.training_task_id ? h("code", {}, model.training_task_id) : "—"],
      ["Recommended", model.is_recommended ? `yes (score ${number(model.recommendation_score, 1)})` : "no"],
      model.metadata && model.metadata.failure_reason ? ["Failure reason", model.metadata.failure_reason] : null,
      model.metadata && model.metadata.degraded_reason
        ? ["Degraded because", String(model.metadata.degraded_reason.reason || "")] : null,
      ["Training config", h("code", { class: "wrap" }, JSON.stringify(model.training_config))],
    ].filter(Boolean);
    replace(parts.fields, h("dl", { class: "fields", id: "fields" },
      rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)])));
  }

  function renderMetrics(model) {
    const metrics = scalarMetrics(model.performance_metrics);
    replace(parts.metrics, metrics.length
      ? h("table", { id: "performance-metrics" }, h("caption", {}, `Test-set metrics of version ${model.version}`),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric"), h("th", { scope: "col" }, "Value"))),
        h("tbody", {}, metrics.map(([name, value]) => h("tr", {}, h("th", { scope: "row" }, name),
          h("td", {}, number(value))))))
      : h("p", { class: "muted" }, "No metrics yet: the model has not trained."));
  }

  function renderCurve(model) {
    const training = model.training_metrics || {};
    const isLive = model.status === "training";
    const points = isLive ? page.livePoints : (training.learning_curve || []);
    const caption = isLive ? `Training now (run ${page.liveRun || "…"}), live` : `Learning curve of version ${model.version}`;
    curve = learningCurve([], { unit: training.epoch_unit || "epoch", loss: training.loss || "loss", caption });
    const note = [];
    if (isLive && page.tuning) note.push(h("p", { class: "muted", id: "tuning" }, page.tuning));
    if (!isLive && training.learning_curve_points) {
      note.push(h("p", { class: "muted" }, `Thinned from ${training.learning_curve_points} points.`));
    }
    replace(parts.curve, curve.figure, note);
    curve.figure.dataset.live = String(isLive);
    curve.set(points);
  }

  function renderConfusion(model) {
    const metrics = model.performance_metrics || {};
    const was = parts.confusion.querySelector("details");
    const open = Boolean(was && was.open);
    if (!Array.isArray(metrics.confusion_matrix) || !Array.isArray(metrics.confusion_matrix_labels)) {
      replace(parts.confusion, h("p", { class: "muted" }, model.version
        ? "No confusion matrix: this version is not a classifier." : "No confusion matrix yet."));
      return;
    }
    const labels = metrics.confusion_matrix_labels;
    const perClass = Array.isArray(metrics.per_class) ? metrics.per_class : [];
    replace(parts.confusion, h("details", { id: "confusion-matrix", open },
      h("summary", {}, `Confusion matrix (${labels.length} classes)`),
      h("div", { class: "table-wrap" }, confusionGrid(metrics.confusion_matrix, labels)),
      perClass.length ? h("div", { class: "table-wrap" }, h("table", {}, h("caption", {}, "Per class"),
        h("thead", {}, h("tr", {}, ["Class", "Precision", "Recall", "F1", "Test rows"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, perClass.map((row) => h("tr", {}, h("th", { scope: "row" }, String(row.class)),
          h("td", {}, number(row.precision)), h("td", {}, number(row.recall)), h("td", {}, number(row.f1_score)),
          h("td", {}, number(row.support))))))) : null));
  }

  function renderImportance(model) {
    const metrics = model.performance_metrics || {};
    replace(parts.importance, metrics.feature_importance
      ? [importanceBars(metrics.feature_importance),
        metrics.feature_importance_method ? h("p", { class: "help" }, metrics.feature_importance_method) : null]
      : h("p", { class: "muted" }, "No feature importance yet."));
  }

  function renderVersions() {
    const training = page.model.status === "training";
    replace(parts.versions, page.versions.length ? h("div", { class: "table-wrap" }, h("table", { id: "versions" },
      h("thead", {}, h("tr", {}, ["Version", "Trained", "Primary metric", "Data", "Run"]
        .map((t) => h("th", { scope: "col" }, t)), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Action")))),
      h("tbody", {}, page.versions.map((version) => {
        const metric = primaryMetric({ performance_metrics: version.performance_metrics, monitoring: page.model.monitoring });
        const data = version.data || {};
        return h("tr", { dataset: { version: version.version } },
          h("th", { scope: "row" }, `v${version.version}`, version.current ? h("span", { class: "badge current" }, "current") : null),
          h("td", {}, when(version.trained_at)),
          h("td", {}, metric ? `${metric.name} ${number(metric.value)}` : "—"),
          h("td", {}, data.synthetic ? "synthetic" : `${number(data.rows)} rows`),
          h("td", {}, h("code", {}, version.run_id)),
          h("td", {}, writer && !version.current
            ? h("button", { type: "button", class: "promote", id: `promote-v${version.version}`, disabled: training || page.gone,
              onclick: () => promote(version.version) }, `Promote v${version.version}`) : null));
      }))))
      : h("p", { class: "muted" }, "No trained version yet."));
  }

  function renderRuns() {
    replace(parts.runs, page.runs.length ? h("div", { class: "table-wrap" }, h("table", { id: "runs" },
      h("thead", {}, h("tr", {}, ["Run", "Version", "Status", "Started", "Updated", "Reason"]
        .map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, page.runs.map((run) => {
        const history = run.status_history || [];
        const reason = run.failure_reason || (history.length ? history[history.length - 1].note : "");
        return h("tr", { dataset: { runId: run.run_id, status: run.status } },
          h("th", { scope: "row" }, h("code", {}, run.run_id)),
          h("td", {}, `v${run.version}`),
          h("td", {}, statusBadge(run.status)),
          h("td", {}, when(run.created_at)),
          h("td", {}, when(run.updated_at)),
          h("td", { class: "reason" }, reason || "—"));
      }))))
      : h("p", { class: "muted" }, "No runs yet."));
  }

  function onEvent(event) {
    if (!page.model || event.model_id !== modelId) return;
    if (event.event === "training.progress") {
      if (page.model.status !== "training" || (page.liveRun && event.run_id !== page.liveRun)) return;
      if (event.tuning) {
        const t = event.tuning;
        page.tuning = `Tuning: trial ${t.trial} (${t.trials_done} done), best ${t.metric} ${number(t.best_score)}`;
        renderCurve(page.model);
      } else if (typeof event.epoch === "number") {
        const point = { epoch: event.epoch, training_loss: event.training_loss, validation_loss: event.validation_loss };
        page.livePoints = [...page.livePoints.filter((p) => p.epoch !== point.epoch), point];
        curve.add(point);
      }
    } else if (event.event === "model.status_changed") {
      const started = event.status === "training";
      if (started) {
        page.liveRun = event.run_id || null;
        page.livePoints = [];
        page.tuning = null;
      }
      page.model = { ...page.model, status: event.status };
      ctx.notify(`Status: ${event.status}.`);
      render();
      reload(); // the record's version, metrics and curve once a run ends; the run's row when one starts
    } else if (event.event === "model.deleted") {
      page.gone = true;
      ctx.notify("This model was deleted.");
      render();
    } else if (["model.version_promoted", "training.cancelled"].includes(event.event)) {
      reload();
    }
  }

  (async () => {
    try {
      await fetchAll();
    } catch (error) {
      if (closed) return;
      if (error.status === 404) notFound(error);
      else ctx.showError(error);
      return;
    }
    if (closed) return;
    replace(ctx.main,
      parts.header,
      parts.actions,
      h("div", { class: "grid" },
        section("fields", "Fields", parts.fields),
        section("metrics", "Performance metrics", parts.metrics)),
      section("curve", "Learning curve", parts.curve),
      h("div", { class: "grid" },
        section("confusion", "Confusion matrix", parts.confusion),
        section("importance", "Feature importance", parts.importance)),
      section("versions", "Versions", parts.versions),
      section("runs", "Runs", parts.runs));
    render();
    socket = connectLive({
      url: ctx.websocketUrl, token: ctx.token, subscribe: { model_id: modelId }, onEvent,
      onState: (stateName, detail) => {
        live.textContent = LIVE_TEXT[stateName] + (detail ? ` (${detail})` : "");
        live.dataset.state = stateName;
        if (stateName === "subscribed") reload(); // what changed before the subscription took hold
      },
    });
  })();

  return () => {
    closed = true;
    if (socket) socket.close();
  };
}
