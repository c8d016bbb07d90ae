// The shell's shared pieces: the status and error regions, and the confirmation dialog every action goes through.

import { h, replace } from "./dom.js";

export function notify(text) {
  const region = document.getElementById("notice");
  replace(region, text);
  region.hidden = !text;
}

export function showError(error) {
  const region = document.getElementById("error");
  if (!error) {
    replace(region);
    region.hidden = true;
    return;
  }
  const text = typeof error.describe === "function" ? error.describe() : String(error.message || error);
  replace(region, h("strong", {}, "Error: "), text,
    h("button", { type: "button", class: "link", onclick: () => showError(null) }, "Dismiss"));
  region.hidden = false;
}

/**
 * Ask before acting. `body` is extra content (a form's fields); `collect(form)` turns the form into the
 * value the promise resolves to. Resolves to null when the person cancels (button, Escape).
 */
export function confirmAction({ title, body = null, confirmLabel = "Confirm", danger = false, collect = () => true }) {
  const dialog = document.getElementById("confirm");
  const form = dialog.querySelector("form");
  replace(dialog.querySelector("#confirm-title"), title);
  replace(dialog.querySelector("#confirm-body"), body);
  const ok = dialog.querySelector("#confirm-ok");
  ok.textContent = confirmLabel;
  ok.className = danger ? "danger" : "primary";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" ? collect(form) : null);
    }, { once: true });
    dialog.showModal();
    ok.focus();
  });
}
