// The HTML panels over the map: ticker, counters, top lists (a row is a button
// that filters the view to it), connection state, dropped counter, demo banner
// and kind legend. Text only, through dom.js.

import { byId, el } from "./dom.js";
import { KIND_COLORS, clockUTC, detailOf, kindColor, kindOf } from "./events.js";

export class Ticker {
  constructor(list, maxItems = 50) {
    this.list = list;
    this.maxItems = maxItems;
  }

  /** Prepend events given oldest first; only the newest maxItems can stay, so only those are built. */
  addAll(events) {
    for (const event of events.slice(-this.maxItems)) this.add(event);
  }

  /** Prepend one event; the oldest item falls off past maxItems. */
  add(event) {
    const kind = kindOf(event);
    const swatch = el("span", { className: "swatch" });
    swatch.style.backgroundColor = kindColor(event);
    const detail = detailOf(event);
    const item = el(
      "li",
      {
        // a successful login is the one line a SOC wall must not let scroll by unnoticed
        className: kind === "login_attempt" && event.outcome === "success" ? "ticker-item login-success" : "ticker-item",
        dataset: { eventId: event.id ?? "" },
        title: detail,
      },
      [
        el("span", { className: "t-time", text: clockUTC(event.ts) }),
        el("span", { className: "t-country", text: event.src_geo?.country ?? "--" }),
        el("span", { className: "t-ip", text: event.src_ip ?? "?", title: String(event.src_ip ?? "") }),
        el("span", { className: "t-sensor", text: `→ ${event.sensor ?? "?"}` }),
        el("span", { className: "t-kind" }, [swatch, event.kind ?? kind]),
        el("span", { className: "t-detail", text: detail }),
      ],
    );
    this.list.prepend(item);
    while (this.list.children.length > this.maxItems) this.list.lastElementChild.remove();
  }
}

function setNumber(id, value) {
  byId(id).textContent = Number.isFinite(value) ? String(value) : "–";
}

const TOP_SHOWN = 8;

function fillTop(list, rows, labelOf, filter) {
  const items = (Array.isArray(rows) ? rows : []).slice(0, TOP_SHOWN).map((row) => {
    const label = labelOf(row);
    const button = el("button", { className: "top-row", title: `show only ${label}` }, [
      el("span", { className: "top-key", text: label, title: label }),
      el("span", { className: "top-count", text: row.count ?? 0 }),
    ]);
    button.type = "button";
    button.addEventListener("click", () => filter(String(row.key)));
    return el("li", { dataset: { key: String(row.key) } }, [button]);
  });
  list.replaceChildren(...items);
}

/**
 * Render /api/v1/stats/summary: the live counters, or the window's total in
 * history mode; the top lists; the pipeline counters.
 * @param {(key: string, value: string) => void} onFilter a top row was clicked
 */
export function showSummary(summary, onFilter) {
  const counts = summary.counts ?? {};
  setNumber("count-1m", counts["1m"]);
  setNumber("count-1h", counts["1h"]);
  setNumber("count-24h", counts["24h"]);
  setNumber("count-window", summary.total);
  const top = summary.top ?? {};
  fillTop(byId("top-countries"), top.countries, (row) => String(row.key), (key) => onFilter("country", key));
  fillTop(byId("top-ports"), top.ports, (row) => String(row.key), (key) => onFilter("port", key));
  fillTop(byId("top-asns"), top.asns, (row) => (row.label ? `AS${row.key} ${row.label}` : `AS${row.key}`),
    (key) => onFilter("asn", key));
  setNumber("rejected", summary.pipeline?.rejected);
  setNumber("pipeline-dropped", summary.pipeline?.dropped);
  setNumber("ignored", summary.pipeline?.ignored);
}

export function showConnection(state) {
  const status = byId("conn-status");
  status.dataset.state = state;
  status.textContent = state === "up" ? "live" : "stream lost";
}

/** Events the server dropped for this client; shown as soon as there is one. */
export class DroppedCounter {
  constructor(node) {
    this.node = node;
    this.total = 0;
  }

  add(count) {
    if (!Number.isFinite(count) || count <= 0) return;
    this.total += count;
    this.node.textContent = String(this.total);
    this.node.dataset.nonzero = "true";
  }
}

export function showDemoBanner(visible) {
  byId("demo-banner").hidden = !visible;
}

/** The kind legend; a kind is a button that filters the view to it. */
export function buildLegend(list, onFilter) {
  const items = Object.entries(KIND_COLORS).map(([kind, color]) => {
    const swatch = el("span", { className: "swatch" });
    swatch.style.backgroundColor = color;
    const button = el("button", { className: "legend-kind", title: `show only ${kind}` }, [swatch, kind.replace("_", " ")]);
    button.type = "button";
    button.addEventListener("click", () => onFilter("kind", kind));
    return el("li", { dataset: { kind } }, [button]);
  });
  list.replaceChildren(...items);
}
