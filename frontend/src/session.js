// Who is looking: GET /api/v1/session, the login form (#login-form, posted with
// fetch: the CSP keeps form-action 'none'), and logout. A successful login or
// logout reloads the page, which then builds itself for its new audience; the
// URL (the view) survives the reload.

import { byId } from "./dom.js";

/**
 * @typedef {{user: string|null, role: string|null, via: string|null, public_view: boolean}} Session
 * audience: "analyst" (a user or a token), "public" (public view, nobody logged in),
 * or "none" (nobody logged in, no public view: only the login form).
 */

/** The session, with its audience. */
export async function loadSession() {
  const response = await fetch("/api/v1/session", { cache: "no-store", headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`/api/v1/session: HTTP ${response.status}`);
  const session = await response.json();
  const audience = session?.user ? "analyst" : session?.public_view ? "public" : "none";
  return { ...session, audience };
}

export class LoginForm {
  /** @param {{cancellable: boolean}} options cancellable: the public map is behind the form */
  constructor({ cancellable }) {
    this.root = byId("login");
    this.form = byId("login-form");
    this.error = byId("login-error");
    this.submit = byId("login-submit");
    const cancel = byId("login-cancel");
    cancel.hidden = !cancellable;
    cancel.addEventListener("click", () => this.hide());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.post();
    });
  }

  show(reason = "") {
    this.root.hidden = false;
    this.say(reason);
    byId("login-username").focus();
  }

  hide() {
    this.root.hidden = true;
  }

  get shown() {
    return !this.root.hidden;
  }

  say(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  async post() {
    const username = byId("login-username").value;
    const password = byId("login-password").value;
    this.submit.disabled = true;
    this.say("");
    try {
      const response = await fetch("/api/v1/login", {
        method: "POST",
        cache: "no-store",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ username, password }),
      });
      if (response.ok) {
        byId("login-password").value = "";
        window.location.reload();
        return;
      }
      this.say(await failure(response));
    } catch (error) {
      this.say(`The server cannot be reached (${error.message}).`);
    } finally {
      this.submit.disabled = false;
    }
  }
}

async function failure(response) {
  if (response.status === 429) {
    const wait = Number(response.headers.get("retry-after"));
    return `Too many attempts: try again in ${Number.isFinite(wait) && wait > 0 ? `${wait} s` : "a moment"}.`;
  }
  let detail = "";
  try {
    detail = (await response.json())?.detail ?? "";
  } catch {
    // not JSON: the status says enough
  }
  if (response.status === 401) return detail ? String(detail) : "Wrong user name or password.";
  return `Login failed (HTTP ${response.status}${detail ? `: ${detail}` : ""}).`;
}

export async function logout() {
  try {
    await fetch("/api/v1/logout", { method: "POST", cache: "no-store" });
  } finally {
    window.location.reload();
  }
}
