// The JSON API: one GET helper that reports a 401 (the session ended) to one
// listener, and polling with one request in flight per endpoint: the next one is
// scheduled only after the previous answered or failed.

export class HttpError extends Error {
  constructor(url, status) {
    super(`${url}: HTTP ${status}`);
    this.status = status;
  }
}

let unauthorized = () => {};

/** Who hears that an API call answered 401 (the page goes back to its login form). */
export function onUnauthorized(listener) {
  unauthorized = listener;
}

/** GET a same-origin JSON resource; throws on a network error or a non-2xx answer. */
export async function fetchJSON(url, { signal } = {}) {
  const response = await fetch(url, { cache: "no-store", headers: { accept: "application/json" }, signal });
  if (response.status === 401) unauthorized();
  if (!response.ok) throw new HttpError(url, response.status);
  return response.json();
}

/**
 * Poll `url` (a string, or a function giving the current one); onData gets the body
 * and the performance.now() at which its request was sent. Returns {stop, now}: now()
 * asks again at once (the view changed), and an answer to an older URL is dropped.
 */
export function poll(url, intervalMs, handlers) {
  return pollWith(() => fetchJSON(typeof url === "function" ? url() : url), intervalMs, handlers);
}

/** poll() of anything that answers with a promise (several requests that make one answer). */
export function pollWith(load, intervalMs, { onData, onError }) {
  let timer = null;
  let stopped = false;
  let generation = 0;
  async function tick() {
    clearTimeout(timer);
    const mine = ++generation;
    const requestedAt = performance.now();
    try {
      const body = await load();
      if (mine === generation && !stopped) onData(body, requestedAt);
    } catch (error) {
      if (mine === generation) onError(error);
    } finally {
      if (!stopped && mine === generation) timer = setTimeout(tick, intervalMs);
    }
  }
  tick();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
    now: () => {
      if (!stopped) tick();
    },
  };
}
