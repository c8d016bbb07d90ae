// A project's models (paged with the API's next_token, filtered by status on the page shown), its
// ontologies and storage configs; statuses follow the project's WebSocket events.

import { h, number, replace, STATUSES, statusBadge, when } from "../dom.js";
import { connectLive, LIVE_TEXT } from "../live.js";
import { canWrite } from "../session.js";
import { primaryMetric } from "./metrics.js";

const PAGE_SIZE = 20;

export function modelsPage(ctx, project) {
  const base = `#/projects/${encodeURIComponent(project)}`;
  ctx.setCrumbs([{ label: "Projects", href: "#/" }, { label: project }]);
  const role = ctx.role(project);
  const filter = h("select", { id: "status-filter" }, h("option", { value: "" }, "all"),
    STATUSES.map((status) => h("option", { value: status }, status)));
  const body = h("tbody");
  const summary = h("p", { class: "muted", id: "models-summary", "aria-live": "polite" });
  const previous = h("button", { type: "button", id: "previous-page", disabled: true }, "Previous page");
  const next = h("button", { type: "button", id: "next-page", disabled: true }, "Next page");
  const live = h("p", { class: "live", id: "live-state" }, LIVE_TEXT.connecting);
  const ontologies = h("div", { id: "ontologies" }, h("p", { class: "muted" }, "Loading…"));
  const storage = h("div", { id: "storage-configs" }, h("p", { class: "muted" }, "Loading…"));
  // tokens[i] is the next_token that fetches page i (page 0: none).
  const paging = { tokens: [null], page: 0, next: null, models: [] };

  replace(ctx.main,
    h("div", { class: "title-row" }, h("h1", {}, `Project ${project}`),
      role ? h("span", { class: `badge role role-${role}` }, role) : null, live),
    h("section", { "aria-labelledby": "models-heading" },
      h("div", { class: "title-row" }, h("h2", { id: "models-heading" }, "Models"),
        canWrite(ctx.who, project) ? h("a", { class: "button", id: "new-model", href: `${base}/new` }, "New model") : null),
      h("div", { class: "toolbar" }, h("label", { for: "status-filter" }, "Status"), filter, summary),
      h("div", { class: "table-wrap" }, h("table", { id: "models", class: "list" },
        h("thead", {}, h("tr", {}, ["Name", "Type", "Status", "Version", "Primary metric", "Updated"]
          .map((label) => h("th", { scope: "col" }, label)))),
        body)),
      h("nav", { class: "pager", "aria-label": "Pages of models" }, previous, next)),
    h("div", { class: "two-col" },
      h("section", { "aria-labelledby": "ontologies-heading" }, h("h2", { id: "ontologies-heading" }, "Ontologies"),
        ontologies),
      h("section", { "aria-labelledby": "storage-heading" }, h("h2", { id: "storage-heading" }, "Storage configs"),
        storage)));

  function row(model) {
    const metric = primaryMetric(model);
    return h("tr", { dataset: { modelId: model.id, status: model.status } },
      h("th", { scope: "row" }, h("a", { href: `${base}/models/${encodeURIComponent(model.id)}` }, model.name)),
      h("td", {}, model.type),
      h("td", { class: "status-cell" }, statusBadge(model.status)),
      h("td", {}, model.version ? `v${model.version}` : "—"),
      h("td", {}, metric ? `${metric.name} ${number(metric.value)}` : "—"),
      h("td", {}, when(model.updated_at)));
  }

  function render() {
    const wanted = filter.value;
    const shown = paging.models.filter((model) => !wanted || model.status === wanted);
    replace(body, shown.length ? shown.map(row)
      : h("tr", {}, h("td", { colspan: 6, class: "muted" },
        paging.models.length ? `No ${wanted} models on this page.` : "No models in this project yet.")));
    summary.textContent = `Page ${paging.page + 1}: ${shown.length} of ${paging.models.length} models shown`
      + (wanted ? ` (status ${wanted})` : "");
    previous.disabled = paging.page === 0;
    next.disabled = !paging.next;
  }

  let asked = 0; // only the latest request's answer is shown (a page click and a live refresh may cross)

  async function load(page) {
    const ticket = ++asked;
    try {
      const answer = await ctx.api.call("listModels", {
        query: { project_id: project, limit: PAGE_SIZE, next_token: paging.tokens[page] } });
      if (ticket !== asked) return;
      paging.page = page;
      paging.models = answer.models;
      paging.next = answer.next_token;
      paging.tokens[page + 1] = answer.next_token;
      render();
    } catch (error) {
      if (ticket !== asked) return;
      replace(body, h("tr", {}, h("td", { colspan: 6 }, `Cannot list this project's models: ${error.message}`)));
      ctx.showError(error);
    }
  }

  async function loadSide() {
    const [onto, configs] = await Promise.allSettled([
      ctx.api.call("listOntologies", { query: { project_id: project, limit: 50 } }),
      ctx.api.call("listStorageConfigs", { query: { project_id: project, limit: 50 } }),
    ]);
    replace(ontologies, onto.status === "fulfilled"
      ? (onto.value.ontologies.length ? h("ul", {}, onto.value.ontologies.map((o) => h("li", {},
        h("strong", {}, o.name), " ", h("code", {}, o.id)))) : h("p", { class: "muted" }, "None."))
      : h("p", {}, onto.reason.message));
    replace(storage, configs.status === "fulfilled"
      ? (configs.value.storage_configs.length ? h("ul", {}, configs.value.storage_configs.map((s) => h("li", {},
        h("strong", {}, s.name), " ", h("code", {}, s.uri), ` (${s.format})`))) : h("p", { class: "muted" }, "None."))
      : h("p", {}, configs.reason.message));
  }

  function onEvent(event) {
    const index = paging.models.findIndex((model) => model.id === event.model_id);
    if (event.event === "model.deleted") {
      if (index >= 0) paging.models.splice(index, 1);
    } else if (event.event === "model.status_changed" && index >= 0) {
      paging.models[index] = { ...paging.models[index], status: event.status, updated_at: event.at };
      // The status is live; version and metrics come with a fresh page once a run ends.
      if (["trained", "failed"].includes(event.status)) load(paging.page);
    } else if (event.event === "model.status_changed" && paging.page === 0) {
      load(0); // a model this page does not show (yet): it may belong on the first page now
      return;
    } else {
      return;
    }
    render();
  }

  filter.addEventListener("change", render);
  previous.addEventListener("click", () => load(paging.page - 1));
  next.addEventListener("click", () => load(paging.page + 1));
  const socket = connectLive({
    url: ctx.websocketUrl, token: ctx.token, subscribe: { project_id: project }, onEvent,
    onState: (stateName, detail) => {
      live.textContent = LIVE_TEXT[stateName] + (detail ? ` (${detail})` : "");
      live.dataset.state = stateName;
      if (stateName === "subscribed") load(paging.page); // what changed before the subscription took hold
    },
  });
  load(0);
  loadSide();
  return () => socket.close();
}
