// Signing in without pasting: the hosted UI's authorization code flow with PKCE (RFC 7636, S256), and
// the local stack's demo sign-in link. Either way the page ends up with a token it keeps where a pasted
// one goes (session.js); the token itself never goes into a URL. What does pass through the address bar
// (the authorization code and state, the demo link's one-time code) is taken out with
// history.replaceState before anything else happens, so it does not stay in the URL or the history.

const PENDING_KEY = "ml-models.console.pkce";
const RETURN_PARAMS = ["code", "state", "error", "error_description", "error_uri", "iss", "session_state"];
const DEMO_PREFIX = "#demo-sign-in=";

function base64Url(bytes) {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(byteCount) {
  return base64Url(crypto.getRandomValues(new Uint8Array(byteCount)));
}

/** The S256 code challenge of `verifier`: base64url(SHA-256(verifier)), no padding. */
export async function challengeOf(verifier) {
  return base64Url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

/** Go to the hosted UI: a fresh verifier and state kept in this tab's sessionStorage, the challenge sent. */
export async function beginSignIn(auth) {
  const verifier = randomString(48); // 64 characters, within RFC 7636's 43..128
  const state = randomString(24);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state, redirect_uri: auth.redirect_uri }));
  const url = new URL(auth.authorize_url);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: auth.client_id,
    redirect_uri: auth.redirect_uri,
    scope: auth.scopes.join(" "),
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

/**
 * What the hosted UI sent back in this page's query ({code, state, error, error_description}), or null.
 * Either way the parameters are removed from the address bar and the history entry at once.
 */
export function takeReturn() {
  const url = new URL(location.href);
  if (!url.searchParams.has("code") && !url.searchParams.has("error")) return null;
  const answer = {};
  for (const name of RETURN_PARAMS) {
    if (url.searchParams.has(name)) answer[name] = url.searchParams.get(name);
    url.searchParams.delete(name);
  }
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  return answer;
}

/** The ID token for the code in `answer` (from takeReturn), after checking the state this tab sent. */
export async function completeSignIn(auth, answer) {
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  } catch {
    pending = null;
  }
  sessionStorage.removeItem(PENDING_KEY); // one attempt per verifier, whatever happens
  if (answer.error) throw new Error(`the sign-in page answered ${answer.error}${answer.error_description ? `: ${answer.error_description}` : ""}`);
  if (!pending || typeof pending.state !== "string" || pending.state !== answer.state) {
    throw new Error("the sign-in answer does not match a sign-in this tab started (state); sign in again");
  }
  let response;
  try {
    response = await fetch(auth.token_url, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: auth.client_id,
        code: answer.code,
        redirect_uri: pending.redirect_uri,
        code_verifier: pending.verifier,
      }),
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch (error) {
    throw new Error(`the token endpoint could not be reached (${error.message})`);
  }
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  if (!response.ok) {
    throw new Error(`the token endpoint refused the code: ${body.error_description || body.error || `HTTP ${response.status}`}`);
  }
  // The API takes the ID token: its aud is the app client (Cognito's access tokens carry no aud).
  if (typeof body.id_token !== "string") throw new Error("the token endpoint sent no ID token (is openid in the scopes?)");
  return body.id_token;
}

/** The demo link's one-time code from the fragment (#demo-sign-in=<code>), removed from the URL; or null. */
export function takeDemoCode() {
  if (!location.hash.startsWith(DEMO_PREFIX)) return null;
  const code = decodeURIComponent(location.hash.slice(DEMO_PREFIX.length));
  history.replaceState(history.state, "", location.pathname + location.search);
  return code;
}

/** The local stack's demo editor token for `code` (POSTed as JSON, answered in the body: never a URL). */
export async function redeemDemoCode(code) {
  let response;
  try {
    response = await fetch("demo-sign-in", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ code }),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    throw new Error(`the local stack could not be reached (${error.message})`);
  }
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  if (!response.ok || typeof body.token !== "string") {
    throw new Error(body.message || `the demo sign-in answered HTTP ${response.status}`);
  }
  return body.token;
}
