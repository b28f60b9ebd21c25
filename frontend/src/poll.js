// Polling of the JSON API. One request in flight per endpoint: the next one is
// scheduled only after the previous answered or failed.

export function poll(url, intervalMs, { onData, onError }) {
  let timer = null;
  let stopped = false;
  async function tick() {
    try {
      const response = await fetch(url, { cache: "no-store", headers: { accept: "application/json" } });
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      onData(await response.json());
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
