// The console's shell: sign-in, the hash router (#/, #/projects/<id>, #/projects/<id>/models/<id>) and
// the projects page. The hash carries ids only; the token lives in sessionStorage (session.js).

import { createClient } from "./api.js";
import { h, replace } from "./dom.js";
import { clearToken, decodeClaims, expired, loadToken, principal, roleIn, saveToken } from "./session.js";
import { notify, showError } from "./ui.js";
import { createPage } from "./views/create.js";
import { modelsPage } from "./views/models.js";
import { modelPage } from "./views/model.js";

const main = document.getElementById("main");
const state = { token: null, who: null, config: { websocket_url: null }, cleanup: null };

const api = createClient({
  token: () => state.token,
  onUnauthorized: (error) => signOut(`The API refused the token: ${error.message}. Paste a new one.`),
});

function signIn(token) {
  const claims = decodeClaims(token);
  const who = principal(claims);
  if (expired(who)) throw new Error(`this token expired at ${who.expiresAt.toISOString()}`);
  saveToken(token);
  state.token = token;
  state.who = who;
}

function signOut(message = "") {
  clearToken();
  state.token = null;
  state.who = null;
  route();
  if (message) showError(new Error(message));
}

function restore() {
  const token = loadToken();
  if (!token) return;
  try {
    signIn(token);
  } catch {
    clearToken();
  }
}

function renderWho() {
  const who = document.getElementById("who");
  if (!state.who) {
    replace(who);
    return;
  }
  replace(who,
    h("span", { class: "muted" }, "Signed in as "), h("strong", {}, state.who.subject || "unknown"),
    state.who.admin ? h("span", { class: "badge role" }, "admin") : null,
    h("button", { type: "button", class: "link", id: "sign-out", onclick: () => signOut() }, "Sign out"));
}

export function setCrumbs(items) {
  const crumbs = document.getElementById("crumbs");
  replace(crumbs, items.map((item, i) => h("li", {},
    i === items.length - 1 ? h("span", { "aria-current": "page" }, item.label) : h("a", { href: item.href }, item.label))));
  document.title = `${items.length ? items[items.length - 1].label + " · " : ""}ML Models console`;
}

function signInPage() {
  setCrumbs([{ label: "Sign in" }]);
  const input = h("input", { id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true,
    "aria-describedby": "token-help" });
  const form = h("form", { class: "card narrow", id: "sign-in", onsubmit: (event) => {
    event.preventDefault();
    try {
      signIn(input.value.trim());
      input.value = "";
      showError(null);
      route();
    } catch (error) {
      showError(new Error(`That token cannot be used: ${error.message}.`));
      input.focus();
    }
  } },
  h("h1", {}, "Sign in"),
  h("label", { for: "token" }, "Bearer token"),
  input,
  h("p", { id: "token-help", class: "help" }, "Locally: ", h("code", {}, "make token PROJECT=proj-123 ROLE=editor"),
    ". The token stays in this browser tab (session storage) and is sent only to this API."),
  h("button", { type: "submit", class: "primary" }, "Sign in"));
  // The input has no `name`: even if this form were ever submitted natively, the token would not go into a URL.
  replace(main, form);
  input.focus();
}

function projectsPage() {
  setCrumbs([{ label: "Projects" }]);
  const who = state.who;
  const projects = [...who.roles.entries()].sort(([a], [b]) => a.localeCompare(b));
  const open = h("input", { id: "project-id", type: "text", pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,99}", required: true,
    autocomplete: "off" });
  replace(main,
    h("h1", {}, "Projects"),
    h("p", { class: "help" }, who.admin
      ? "Your token is an admin's: every project. Open one by its id."
      : "The projects your token names (the API checks every request)."),
    projects.length
      ? h("ul", { class: "cards", id: "projects" }, projects.map(([id, role]) => h("li", { class: "card" },
        h("a", { href: `#/projects/${encodeURIComponent(id)}`, class: "project-link" }, id),
        h("span", { class: `badge role role-${role}` }, role))))
      : (who.admin ? null : h("p", {}, "Your token names no project.")),
    h("form", { class: "inline", onsubmit: (event) => {
      event.preventDefault();
      location.hash = `#/projects/${encodeURIComponent(open.value.trim())}`;
    } }, h("label", { for: "project-id" }, "Open a project by id"), open,
    h("button", { type: "submit" }, "Open")));
}

const ROUTES = [
  [/^#?\/?$/, () => projectsPage()],
  [/^#\/projects\/([^/]+)\/?$/, (project) => modelsPage(context(), project)],
  [/^#\/projects\/([^/]+)\/new\/?$/, (project) => createPage(context(), project)],
  [/^#\/projects\/([^/]+)\/models\/([^/]+)\/?$/, (project, model) => modelPage(context(), project, model)],
];

function context() {
  return {
    api, main, setCrumbs, notify, showError,
    who: state.who,
    token: state.token,
    websocketUrl: state.config.websocket_url,
    role: (project) => roleIn(state.who, project),
  };
}

async function route() {
  if (state.cleanup) {
    state.cleanup();
    state.cleanup = null;
  }
  notify("");
  if (state.who && expired(state.who)) {
    signOut("Your token has expired. Paste a new one.");
    return;
  }
  renderWho();
  if (!state.token) {
    signInPage();
    return;
  }
  const hash = location.hash || "#/";
  for (const [pattern, page] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      const params = match.slice(1).map((part) => decodeURIComponent(part));
      try {
        state.cleanup = (await page(...params)) || null;
      } catch (error) {
        showError(error);
      }
      return;
    }
  }
  setCrumbs([{ label: "Projects", href: "#/" }, { label: "Not found" }]);
  replace(main, h("h1", {}, "Not found"), h("p", {}, "No page here. ", h("a", { href: "#/" }, "Projects")));
}

async function boot() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) state.config = await response.json();
  } catch {
    // No config: the console works without live updates.
  }
  document.getElementById("skip").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", () => {
    showError(null);
    route();
  });
  restore();
  await route();
  document.body.dataset.ready = "true";
}

boot();
