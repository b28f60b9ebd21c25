// The events of the view (#events-table): pages of GET /api/v1/events for the
// window and filters, newest or oldest first (`order`), "more" follows
// next_cursor; a row (tr.event-row, data-id) opens #event-details with every
// field of the event and its raw record, as text. Bounded: at most MAX_ROWS rows.

import { byId, el } from "./dom.js";
import { dateTimeUTC, kindColor, printable } from "./events.js";
import { fetchJSON } from "./poll.js";

const PAGE = 100;
const MAX_ROWS = 2000;

export class EventsTable {
  constructor({ onFilter }) {
    this.body = byId("events-body");
    this.more = byId("events-more");
    this.orderButton = byId("events-order");
    this.onFilter = onFilter;
    this.params = null;
    this.order = "desc";
    this.cursor = null;
    this.request = 0;
    this.rows = 0;
    this.details = new EventDetails(onFilter);
    this.more.addEventListener("click", () => this.page());
    this.orderButton.addEventListener("click", () => {
      this.order = this.order === "desc" ? "asc" : "desc";
      this.load(this.params);
    });
  }

  /** Show the events of these API parameters (window and filters) from the first page. */
  load(params) {
    this.params = params;
    this.cursor = null;
    this.rows = 0;
    this.request += 1;
    this.body.replaceChildren();
    this.orderButton.dataset.order = this.order;
    this.orderButton.textContent = this.order === "desc" ? "time ↓" : "time ↑";
    this.page();
  }

  clear() {
    this.request += 1;
    this.params = null;
    this.body.replaceChildren();
    this.more.hidden = true;
    this.details.hide();
  }

  async page() {
    if (!this.params) return;
    const request = this.request;
    const query = new URLSearchParams(this.params);
    query.set("limit", String(PAGE));
    if (this.order === "asc") query.set("order", "asc");
    if (this.cursor) query.set("cursor", this.cursor);
    this.more.hidden = true;
    let page;
    try {
      page = await fetchJSON(`/api/v1/events?${query}`);
    } catch (error) {
      console.warn("honeyatlas: events:", error.message);
      return;
    }
    if (request !== this.request) return;
    const events = Array.isArray(page?.events) ? page.events : [];
    for (const event of events) this.body.append(this.row(event));
    this.rows += events.length;
    this.cursor = typeof page?.next_cursor === "string" ? page.next_cursor : null;
    this.more.hidden = this.cursor === null || this.rows >= MAX_ROWS;
    byId("events-count").textContent = `${this.rows}${this.cursor ? "+" : ""} shown`;
  }

  row(event) {
    // the kind is the swatch's colour (the legend names them) and its title: the address gets the room
    const swatch = el("span", { className: "swatch", title: String(event.kind ?? "") });
    swatch.style.backgroundColor = kindColor(event);
    const source = String(event.src_ip ?? "?");
    const sensor = String(event.sensor ?? "");
    const row = el("tr", { className: "event-row", dataset: { id: event.id ?? "", kind: event.kind ?? "" } }, [
      // the date (small) over the clock: the column needs 8ch
      el("td", { className: "e-time", title: dateTimeUTC(event.ts) }, [
        el("span", { className: "e-date", text: dateTimeUTC(event.ts).slice(5, 10) }),
        el("span", { className: "e-clock", text: dateTimeUTC(event.ts).slice(11, 19) }),
      ]),
      el("td", { className: "e-ip", title: `${source} · ${event.kind ?? ""}` }, [swatch, source]),
      el("td", { className: "e-sensor", text: printable(sensor, 60), title: sensor }),
    ]);
    row.tabIndex = 0;
    const open = () => this.details.show(event);
    row.addEventListener("click", open);
    row.addEventListener("keydown", (key) => {
      if (key.key === "Enter") open();
    });
    return row;
  }
}

/** Field order in the details; the rest follow, raw last. */
const FIRST_FIELDS = ["ts", "kind", "action", "outcome", "src_ip", "src_port", "sensor", "honeypot", "dst_ip", "dst_port",
  "protocol", "session", "username", "password", "command", "url", "sha256", "signature"];
const FILTERABLE = { src_ip: "src_ip", sensor: "sensor", kind: "kind", dst_port: "port", protocol: "protocol",
  honeypot: "honeypot", outcome: "outcome" };

export class EventDetails {
  constructor(onFilter) {
    this.root = byId("event-details");
    this.body = byId("event-details-body");
    this.onFilter = onFilter;
    byId("event-details-close").addEventListener("click", () => this.hide());
  }

  hide() {
    this.root.hidden = true;
    this.body.replaceChildren();
  }

  show(event) {
    const facts = el("dl", { className: "d-facts" });
    const keys = [...FIRST_FIELDS.filter((key) => key in event),
      ...Object.keys(event).filter((key) => !FIRST_FIELDS.includes(key) && key !== "raw")];
    for (const key of keys) {
      const value = event[key];
      const text = value !== null && typeof value === "object" ? JSON.stringify(value) : String(value);
      const cell = el("dd", { text: printable(text, 2000) });
      if (Object.hasOwn(FILTERABLE, key)) {
        const add = el("button", { className: "d-source", text: "filter", title: `show only ${key} ${text}` });
        add.type = "button";
        add.addEventListener("click", () => this.onFilter(FILTERABLE[key], text));
        cell.append(" ", add);
      }
      if (key === "src_ip") cell.append(" ", profileLink(`/attackers/${encodeURIComponent(text)}`, "profile"));
      if (key === "sha256") cell.append(" ", profileLink(`/malware/${encodeURIComponent(text)}`, "payload"));
      facts.append(el("dt", { text: key }), cell);
    }
    const raw = el("pre", { className: "e-raw", text: event.raw ?? "(no raw record stored)" });
    raw.id = "event-raw";
    this.body.replaceChildren(
      el("h3", { className: "d-title", text: `${printable(event.kind, 30)} · ${dateTimeUTC(event.ts)}` }),
      facts,
      el("h4", { className: "e-raw-title", text: "raw record" }),
      raw,
    );
    this.root.hidden = false;
  }
}

export function profileLink(href, text) {
  const link = el("a", { className: "d-link", text });
  link.href = href;
  return link;
}
