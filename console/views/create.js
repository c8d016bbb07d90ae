// A new model for a project: pick the ontology, ask the API which type suits the data (the recommend
// answer: its reasoning and every type's score as bars; the type is pre-filled with its pick), then create.

import { h, number, replace } from "../dom.js";
import { canWrite } from "../session.js";
import { confirmAction } from "../ui.js";

const TYPES = ["decision_tree", "random_forest", "regression", "neural_network"];

export function createPage(ctx, project) {
  const projectHref = `#/projects/${encodeURIComponent(project)}`;
  ctx.setCrumbs([{ label: "Projects", href: "#/" }, { label: project, href: projectHref }, { label: "New model" }]);
  if (!canWrite(ctx.who, project)) {
    replace(ctx.main, h("h1", {}, "New model"),
      h("p", { id: "read-only" }, "Your role in this project may not create models."));
    return null;
  }
  const ontology = h("select", { id: "ontology", required: true }, h("option", { value: "" }, "Loading…"));
  const type = h("select", { id: "model-type", required: true }, TYPES.map((t) => h("option", { value: t }, t)));
  const name = h("input", { id: "model-name-input", type: "text", required: true, maxlength: 200, autocomplete: "off" });
  const description = h("textarea", { id: "model-description", rows: 2 });
  const answer = h("div", { id: "recommendation", "aria-live": "polite" });
  const recommendButton = h("button", { type: "button", id: "recommend", onclick: recommend }, "Recommend a type");

  replace(ctx.main, h("h1", {}, "New model"),
    h("form", { class: "card form", id: "create-model", onsubmit: create },
      h("label", { for: "ontology" }, "Ontology"), ontology,
      h("div", { class: "inline" }, recommendButton,
        h("span", { class: "help" }, "Samples the project's data bound to the ontology and scores each type.")),
      answer,
      h("label", { for: "model-type" }, "Type"), type,
      h("label", { for: "model-name-input" }, "Name"), name,
      h("label", { for: "model-description" }, "Description"), description,
      h("div", { class: "inline" }, h("button", { type: "submit", class: "primary" }, "Create model"))));

  async function loadOntologies() {
    try {
      const list = await ctx.api.call("listOntologies", { query: { project_id: project, limit: 100 } });
      replace(ontology, list.ontologies.length
        ? list.ontologies.map((o) => h("option", { value: o.id }, `${o.name} (${o.id})`))
        : h("option", { value: "" }, "This project has no ontology yet"));
    } catch (error) {
      ctx.showError(error);
    }
  }

  async function recommend() {
    ctx.showError(null);
    recommendButton.disabled = true;
    replace(answer, h("p", { class: "muted" }, "Asking the API…"));
    try {
      const result = await ctx.api.call("recommend", { body: { project_id: project, ontology_id: ontology.value } });
      type.value = result.recommended_type;
      replace(answer, recommendation(result));
    } catch (error) {
      replace(answer);
      ctx.showError(error);
    } finally {
      recommendButton.disabled = false;
    }
  }

  async function create(event) {
    event.preventDefault();
    if (!await confirmAction({ title: `Create ${name.value.trim()}?`, confirmLabel: "Create",
      body: h("p", {}, `A ${type.value} model in project ${project}, status draft.`) })) return;
    ctx.showError(null);
    try {
      const model = await ctx.api.call("createModel", { body: {
        project_id: project, ontology_id: ontology.value, name: name.value.trim(), type: type.value,
        description: description.value.trim() } });
      ctx.notify(`Model ${model.name} created.`);
      location.hash = `${projectHref}/models/${encodeURIComponent(model.id)}`;
    } catch (error) {
      ctx.showError(error);
    }
  }

  loadOntologies();
  return null;
}

function recommendation(result) {
  const scores = Object.entries(result.all_scores).sort((a, b) => b[1] - a[1]);
  const problems = (result.data_analysis && result.data_analysis.problems) || [];
  return h("div", { class: "recommend" },
    h("p", {}, "Recommended: ", h("strong", { id: "recommended-type" }, result.recommended_type),
      ` (score ${number(result.score, 1)} of 100, ${result.task}, ${result.score_basis.replace("_", " ")})`),
    h("ol", { class: "bars", id: "all-scores", "aria-label": "Score of each type, out of 100" },
      scores.map(([name, score]) => h("li", { class: name === result.recommended_type ? "picked" : null },
        h("span", { class: "bar-label" }, name),
        h("span", { class: "bar-track", "aria-hidden": "true" },
          h("span", { class: "bar-fill", style: { width: `${Math.max(0, Math.min(100, score))}%` } })),
        h("span", { class: "bar-value" }, number(score, 1))))),
    h("p", { class: "reasoning", id: "reasoning" }, result.reasoning),
    problems.length ? h("ul", { class: "help" }, problems.map((p) => h("li", {},
      typeof p === "string" ? p : JSON.stringify(p)))) : null);
}
