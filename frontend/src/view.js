// The view is the URL: a time window (live, a relative range or since/until) and
// filters (repeatable: "any of"), read from and written to the page's own query
// string with the same names the API takes, so a view can be bookmarked and
// shared and every panel asks the API for exactly that view. Also the matcher
// that applies the filters to live events in the browser. No DOM, no I/O.

/** Filter parameters, in the order the filter bar shows them; each maps to an event reading. */
export const FILTERS = {
  kind: { label: "kind", of: (event) => event.kind },
  outcome: { label: "outcome", of: (event) => event.outcome },
  protocol: { label: "protocol", of: (event) => event.protocol },
  port: { label: "port", of: (event) => event.dst_port },
  country: { label: "country", of: (event) => event.src_geo?.country },
  asn: { label: "AS", of: (event) => event.src_geo?.asn },
  src_ip: { label: "source", of: (event) => event.src_ip },
  sensor: { label: "sensor", of: (event) => event.sensor },
  honeypot: { label: "honeypot", of: (event) => event.honeypot },
};

/** Relative ranges: name -> seconds. */
export const RANGES = { "15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };

/**
 * @typedef {{range: string|null, since: string|null, until: string|null,
 *            filters: [string, string][], kiosk: boolean, choropleth: boolean}} View
 */

/** The view of a query string (location.search). Unknown parameters are ignored. */
export function parseView(search) {
  const params = new URLSearchParams(search);
  const range = params.get("range");
  const filters = [];
  for (const [key, value] of params) {
    if (Object.hasOwn(FILTERS, key) && value.trim() !== "") filters.push([key, normalise(key, value.trim())]);
  }
  return {
    range: Object.hasOwn(RANGES, range) ? range : null,
    since: validTime(params.get("since")),
    until: validTime(params.get("until")),
    filters: unique(filters),
    kiosk: params.get("kiosk") === "1",
    choropleth: params.get("choropleth") === "1",
  };
}

/** The query string of a view, parameters in a stable order ("" for the plain live view). */
export function viewSearch(view) {
  const params = new URLSearchParams();
  if (view.range) params.set("range", view.range);
  else {
    if (view.since) params.set("since", view.since);
    if (view.until) params.set("until", view.until);
  }
  for (const key of Object.keys(FILTERS)) {
    for (const [k, value] of view.filters) if (k === key) params.append(key, value);
  }
  if (view.choropleth) params.set("choropleth", "1");
  if (view.kiosk) params.set("kiosk", "1");
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** History mode: the view names a window; live mode otherwise. */
export function isHistory(view) {
  return Boolean(view.range || view.since || view.until);
}

/** The window of a history view as [since, until] Dates, fixed at `now` for a relative range. */
export function windowOf(view, now = Date.now()) {
  if (view.range) return [new Date(now - RANGES[view.range] * 1000), new Date(now)];
  const until = view.until ? new Date(view.until) : new Date(now);
  const since = view.since ? new Date(view.since) : new Date(until.getTime() - 86400 * 1000);
  return [since, until];
}

/** API parameters of the view's filters, plus a window when given. */
export function apiParams(view, window = null) {
  const params = new URLSearchParams();
  if (window) {
    params.set("since", window[0].toISOString());
    params.set("until", window[1].toISOString());
  }
  for (const [key, value] of view.filters) params.append(key, value);
  return params;
}

export function withFilter(view, key, value) {
  return { ...view, filters: unique([...view.filters, [key, normalise(key, String(value))]]) };
}

export function withoutFilter(view, key, value) {
  return { ...view, filters: view.filters.filter(([k, v]) => !(k === key && v === value)) };
}

export function withRange(view, range) {
  return { ...view, range, since: null, until: null };
}

export function withWindow(view, since, until) {
  return { ...view, range: null, since: since.toISOString(), until: until.toISOString() };
}

export function live(view) {
  return { ...view, range: null, since: null, until: null };
}

/** A predicate for live events: every filtered parameter must match one of its values. */
export function matcher(view) {
  const groups = new Map();
  for (const [key, value] of view.filters) {
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(key === "src_ip" ? addressTest(value) : (found) => String(found) === value);
  }
  if (groups.size === 0) return () => true;
  return (event) => {
    for (const [key, tests] of groups) {
      const found = FILTERS[key].of(event);
      if (found === undefined || found === null || !tests.some((test) => test(found))) return false;
    }
    return true;
  };
}

function normalise(key, value) {
  if (key === "country") return value.toUpperCase();
  if (key === "asn") return value.replace(/^AS/i, "");
  return value;
}

function unique(filters) {
  const seen = new Set();
  return filters.filter(([key, value]) => {
    const id = `${key}\u0000${value}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

function validTime(text) {
  if (!text) return null;
  return Number.isNaN(Date.parse(text)) ? null : text;
}

/** An address or CIDR prefix -> a test of an address text. */
function addressTest(spec) {
  const [address, bits] = spec.split("/");
  const base = addressBits(address);
  if (base === null) return (found) => found === spec;
  const length = bits === undefined ? base.width : Number(bits);
  if (!Number.isInteger(length) || length < 0 || length > base.width) return (found) => found === spec;
  const shift = BigInt(base.width - length);
  return (found) => {
    const other = addressBits(String(found));
    return other !== null && other.width === base.width && other.value >> shift === base.value >> shift;
  };
}

/** {value: BigInt, width: 32|128} of an IPv4 or IPv6 text, or null. */
export function addressBits(text) {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split(".").map(Number);
    if (parts.some((part) => part > 255)) return null;
    return { value: parts.reduce((acc, part) => (acc << 8n) | BigInt(part), 0n), width: 32 };
  }
  if (!/^[0-9a-f:]+$/i.test(text) || !text.includes(":")) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return null;
  const groups = [...head, ...Array(missing).fill("0"), ...tail];
  if (groups.some((group) => !/^[0-9a-f]{1,4}$/i.test(group))) return null;
  return { value: groups.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)), 0n), width: 128 };
}
