// Every HTTP route the console calls, in one place: tests/console/test_console_files.py holds each
// [method, path] here against docs/openapi.yaml, and checks that no other module names an /api/ path.
// The console is a client of the same API as curl: its base URL (same origin unless config.json's
// api_base_url says otherwise), the caller's bearer token, nothing else.

export const ROUTES = {
  listModels: ["GET", "/api/ml-models"],
  createModel: ["POST", "/api/ml-models"],
  recommend: ["POST", "/api/ml-models/recommend"],
  getModel: ["GET", "/api/ml-models/{model_id}"],
  updateModel: ["PUT", "/api/ml-models/{model_id}"],
  deleteModel: ["DELETE", "/api/ml-models/{model_id}"],
  train: ["POST", "/api/ml-models/train"],
  cancelTraining: ["POST", "/api/ml-models/{model_id}/training/cancel"],
  listRuns: ["GET", "/api/ml-models/{model_id}/runs"],
  listVersions: ["GET", "/api/ml-models/{model_id}/versions"],
  promoteVersion: ["POST", "/api/ml-models/{model_id}/versions/{version}/promote"],
  listOntologies: ["GET", "/api/ontologies"],
  listStorageConfigs: ["GET", "/api/storage-configs"],
};

/** An answer other than 2xx: `status`, and the API's own error body (`code`, `message`, `field`, `request_id`). */
export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && typeof body.message === "string" && body.message) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.body = body || {};
  }

  /** What a person reads: the API's message, the field at fault, and the request id to quote. */
  describe() {
    const parts = [this.message];
    if (this.body.field) parts.push(`(field: ${this.body.field})`);
    if (this.body.request_id) parts.push(`request id ${this.body.request_id}`);
    return parts.join(" ");
  }
}

export function expand(template, params = {}) {
  return template.replace(/\{(\w+)\}/g, (_, name) => {
    if (params[name] === undefined || params[name] === null || params[name] === "") {
      throw new Error(`route ${template} needs ${name}`);
    }
    return encodeURIComponent(String(params[name]));
  });
}

/**
 * A client sending `token()` as the bearer token. `call(name, {params, query, body})` resolves to the
 * parsed JSON body (null for 204) or rejects with an ApiError; `onUnauthorized` hears every 401.
 * `base` (a string, or a function read at each call) is the API's base URL: "" is this page's origin,
 * where the local stack and the CloudFront distribution (/api/* → the API) both put it.
 */
export function createClient({ token, onUnauthorized = () => {}, base = "" }) {
  async function call(name, { params = {}, query = {}, body } = {}) {
    const route = ROUTES[name];
    if (!route) throw new Error(`unknown route ${name}`);
    const [method, template] = route;
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
    }
    const prefix = String((typeof base === "function" ? base() : base) || "").replace(/\/+$/, "");
    const url = prefix + expand(template, params) + (search.toString() ? `?${search}` : "");
    const headers = { Accept: "application/json" };
    const bearer = token();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                     credentials: "omit", cache: "no-store" });
    } catch (error) {
      throw new ApiError(0, { message: `the API could not be reached (${error.message})` });
    }
    const text = await response.text();
    let parsed = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { message: text.slice(0, 300) };
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, parsed);
      if (response.status === 401) onUnauthorized(error);
      throw error;
    }
    return parsed;
  }
  return { call };
}
