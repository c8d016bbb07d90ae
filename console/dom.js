// Building DOM nodes without innerHTML: every string becomes a text node, so nothing the API returns
// (model names, error messages, class labels) is ever parsed as markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const text = date.toISOString().replace("T", " ").slice(0, 16) + " UTC";
  return h("time", { datetime: iso, title: iso }, text);
}

export function number(value, digits = 4) {
  if (typeof value !== "number" || !Number.isFinite(value)) return value === undefined || value === null ? "—" : String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  return value.toFixed(digits).replace(/0+$/, "").replace(/\.$/, "");
}

export const STATUSES = ["draft", "training", "trained", "failed", "degraded", "deprecated", "archived"];

export function statusBadge(status, attrs = {}) {
  return h("span", { class: `badge status-${status}`, ...attrs }, status);
}
