// The JSON API: one GET helper, and polling with one request in flight per
// endpoint: the next one is scheduled only after the previous answered or failed.

/** GET a same-origin JSON resource; throws on a network error or a non-2xx answer. */
export async function fetchJSON(url) {
  const response = await fetch(url, { cache: "no-store", headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

/** Poll `url`; onData gets the body and the performance.now() at which its request was sent. */
export function poll(url, intervalMs, { onData, onError }) {
  let timer = null;
  let stopped = false;
  async function tick() {
    const requestedAt = performance.now();
    try {
      onData(await fetchJSON(url), requestedAt);
    } catch (error) {
      onError(error);
    } finally {
      if (!stopped) timer = setTimeout(tick, intervalMs);
    }
  }
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
