// The console's shell: sign-in, the hash router (#/, #/projects/<id>, #/projects/<id>/models/<id>) and
// the projects page. The hash carries ids only; the token lives in sessionStorage (session.js).
// config.json says where the API (api_base_url; this origin when absent) and the WebSocket are, and,
// with `auth`, how to sign in through the hosted UI (oauth.js).

import { createClient } from "./api.js";
import { h, replace } from "./dom.js";
import { beginSignIn, completeSignIn, redeemDemoCode, takeDemoCode, takeReturn } from "./oauth.js";
import { clearToken, decodeClaims, expired, loadToken, principal, roleIn, saveToken } from "./session.js";
import { notify, showError } from "./ui.js";
import { createPage } from "./views/create.js";
import { modelsPage } from "./views/models.js";
import { modelPage } from "./views/model.js";

const main = document.getElementById("main");
const state = { token: null, who: null, config: { websocket_url: null, api_base_url: "", auth: null }, cleanup: null };

const api = createClient({
  token: () => state.token,
  base: () => state.config.api_base_url || "",
  onUnauthorized: (error) => signOut(`The API refused the token: ${error.message}. Sign in again.`),
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

function hostedSignIn(auth) {
  const button = h("button", { type: "button", class: "primary", id: "sign-in-hosted", onclick: async () => {
    button.disabled = true;
    try {
      await beginSignIn(auth);
    } catch (error) {
      button.disabled = false;
      showError(new Error(`Cannot start the sign-in: ${error.message}.`));
    }
  } }, "Sign in with Cognito");
  return h("section", { class: "card narrow", "aria-labelledby": "sign-in-hosted-title" },
    h("h1", { id: "sign-in-hosted-title" }, "Sign in"),
    h("p", { class: "help" }, "With your user of this stage's sign-in page; you come back here signed in."),
    button);
}

function signInPage() {
  setCrumbs([{ label: "Sign in" }]);
  const auth = state.config.auth;
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
  auth ? h("h2", {}, "Or paste a token") : h("h1", {}, "Sign in"),
  h("label", { for: "token" }, "Bearer token"),
  input,
  h("p", { id: "token-help", class: "help" }, auth
    ? "An ID token of this stage's user pool (docs/DEPLOY.md, step 12)."
    : ["Locally: ", h("code", {}, "make token PROJECT=proj-123 ROLE=editor"), " (or the link `make run` prints)."],
  " The token stays in this browser tab (session storage) and is sent only to this API."),
  h("button", { type: "submit", class: auth ? "" : "primary" }, "Sign in"));
  // The input has no `name`: even if this form were ever submitted natively, the token would not go into a URL.
  if (auth) {
    const hosted = hostedSignIn(auth);
    replace(main, hosted, form);
    hosted.querySelector("button").focus();
  } else {
    replace(main, form);
    input.focus();
  }
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

/** A sign-in that came back in the URL (the hosted UI's code, the demo link's code), or nothing. */
async function signInFromUrl() {
  // Both take their code out of the address bar and the history before anything is sent anywhere.
  const answer = takeReturn();
  const demo = takeDemoCode();
  try {
    if (answer) {
      if (!state.config.auth) throw new Error("this console has no hosted sign-in configured");
      signIn(await completeSignIn(state.config.auth, answer));
    } else if (demo) {
      signIn(await redeemDemoCode(demo));
    }
  } catch (error) {
    return error;
  }
  return null;
}

async function boot() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) state.config = { ...state.config, ...(await response.json()) };
  } catch {
    // No config: the console works without live updates or the hosted sign-in.
  }
  const failed = await signInFromUrl();
  document.getElementById("skip").addEventListener("click", (event) => {
    event.preventDefault();
    main.focus();
  });
  window.addEventListener("hashchange", () => {
    showError(null);
    route();
  });
  if (!state.token) restore();
  await route();
  if (failed) showError(new Error(`The sign-in did not work: ${failed.message}.`));
  document.body.dataset.ready = "true";
}

boot();
