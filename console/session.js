// The signed-in caller: the bearer token (kept in this tab's sessionStorage only: never in a URL, a
// cookie or a log) and, for display only, the roles its claims name. The API verifies the token and
// decides every request; the claims here only choose which projects to list and which buttons to show.
// The rules mirror chalicelib/auth/principal.py (`projects` claim, `cognito:groups`, admin).

const STORAGE_KEY = "ml-models.console.token";
const RANK = { viewer: 1, editor: 2 };
const PROJECT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function loadToken() {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function saveToken(token) {
  sessionStorage.setItem(STORAGE_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(STORAGE_KEY);
}

function base64UrlJson(part) {
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** The token's payload (unverified: for display only), or throws an Error saying why it is not a JWT. */
export function decodeClaims(token) {
  const parts = (token || "").trim().split(".");
  if (parts.length !== 3 || !parts[1]) throw new Error("this is not a JWT (three dot-separated parts)");
  let claims;
  try {
    claims = base64UrlJson(parts[1]);
  } catch {
    throw new Error("the token's payload is not base64url-encoded JSON");
  }
  if (!claims || typeof claims !== "object" || Array.isArray(claims)) throw new Error("the token's payload is not an object");
  return claims;
}

function grant(roles, projectId, role) {
  if (typeof projectId !== "string" || !PROJECT_ID.test(projectId) || !(role in RANK)) return;
  if (RANK[role] > (RANK[roles.get(projectId)] || 0)) roles.set(projectId, role);
}

/** {subject, admin, roles: Map(project id → "viewer" | "editor"), expiresAt: Date | null} from the claims. */
export function principal(claims) {
  const roles = new Map();
  let admin = false;
  let projects = claims.projects;
  if (typeof projects === "string") {
    try {
      projects = JSON.parse(projects);
    } catch {
      projects = null;
    }
  }
  if (projects && typeof projects === "object" && !Array.isArray(projects)) {
    for (const [projectId, role] of Object.entries(projects)) {
      if (projectId === "*" && role === "admin") admin = true;
      else grant(roles, projectId, role);
    }
  }
  let groups = claims["cognito:groups"];
  if (typeof groups === "string") groups = [groups];
  for (const group of Array.isArray(groups) ? groups : []) {
    if (group === "admin") admin = true;
    else if (typeof group === "string" && group.startsWith("project:")) {
      const rest = group.slice("project:".length);
      const cut = rest.lastIndexOf(":");
      if (cut > 0) grant(roles, rest.slice(0, cut), rest.slice(cut + 1));
    }
  }
  const expiresAt = typeof claims.exp === "number" ? new Date(claims.exp * 1000) : null;
  return { subject: String(claims.sub || ""), admin, roles, expiresAt };
}

export function roleIn(who, projectId) {
  if (!who) return null;
  if (who.admin) return "admin";
  return who.roles.get(projectId) || null;
}

export function canWrite(who, projectId) {
  const role = roleIn(who, projectId);
  return role === "admin" || role === "editor";
}

export function expired(who, now = Date.now()) {
  return Boolean(who && who.expiresAt && who.expiresAt.getTime() <= now);
}
