// Incidents on the page: the kind vocabulary, the book of open incidents (the
// latest value per id, bounded) and the #incidents list. Incident keys are
// attacker-controlled (a campaign key is whatever banner, command or password
// list the attacker sent): they reach the page through textContent and the
// title property only, shortened by printable().

import { el } from "./dom.js";
import { printable, shortDuration } from "./events.js";

/** Kind -> label and colour (list tag, map highlight). Unknown kinds get OTHER_KIND. */
export const INCIDENT_KINDS = {
  multi_sensor: { label: "Multi-sensor attacker", color: "#ff5a5f" },
  horizontal_scan: { label: "Horizontal scan", color: "#7b8cff" },
  vertical_scan: { label: "Vertical scan", color: "#5fa8ff" },
  campaign: { label: "Campaign", color: "#ffb020" },
  epidemic: { label: "Epidemic", color: "#ff3df2" },
};
const OTHER_KIND = { label: "Incident", color: "#9aa7b8" };

const FINGERPRINT_LABELS = {
  credentials: "credential list",
  commands: "command sequence",
  download_host: "download host",
  client_version: "SSH client banner",
};

const SHA256 = /^[0-9a-f]{64}$/i;
const KEY_TITLE_MAX = 512; // the full key, within reason, on hover

export function incidentKind(incident) {
  return Object.hasOwn(INCIDENT_KINDS, incident?.kind) ? INCIDENT_KINDS[incident.kind] : OTHER_KIND;
}

export function fingerprintLabel(fingerprint) {
  return Object.hasOwn(FINGERPRINT_LABELS, fingerprint) ? FINGERPRINT_LABELS[fingerprint] : printable(fingerprint, 40);
}

/** The key as the list shows it: a SHA-256 shortened, anything else made printable. */
export function shortKey(incident) {
  const key = String(incident.key ?? "");
  if (SHA256.test(key)) return `${key.slice(0, 12)}…${key.slice(-6)}`;
  return printable(key, 120);
}

export function sourceCount(incident) {
  return Number.isFinite(incident.source_count) && incident.source_count > 0
    ? incident.source_count
    : listOf(incident.sources).length;
}

export function listOf(value) {
  return Array.isArray(value) ? value : [];
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function timeOf(iso) {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? 0 : ms;
}

function isIncident(value) {
  return value !== null && typeof value === "object" && typeof value.id === "string" && value.id !== "";
}

/**
 * Open incidents by id, each the latest value seen. Closed ones leave the book
 * and are remembered (bounded) so a late, stale "open" copy cannot bring them back.
 */
export class IncidentBook {
  constructor({ maxOpen = 500, maxClosed = 2000 } = {}) {
    this.maxOpen = maxOpen;
    this.maxClosed = maxClosed;
    this.open = new Map(); // id -> {incident, lastSeen, receivedAt}
    this.closed = new Map(); // id -> lastSeen of the closing value
  }

  get size() {
    return this.open.size;
  }

  get(id) {
    return this.open.get(id)?.incident ?? null;
  }

  /** Take one incident value; returns it when it was news (newer, or closing), else null. */
  upsert(incident, receivedAt = performance.now()) {
    if (!isIncident(incident)) return null;
    const lastSeen = timeOf(incident.last_seen);
    const closedAt = this.closed.get(incident.id);
    if (closedAt !== undefined && lastSeen <= closedAt) return null; // stale copy of a closed one
    const held = this.open.get(incident.id);
    if (held && isOlder(incident, lastSeen, held)) return null;
    if (incident.status !== "open") {
      this.open.delete(incident.id);
      this.closed.set(incident.id, lastSeen);
      if (this.closed.size > this.maxClosed) this.closed.delete(this.closed.keys().next().value);
      return incident;
    }
    this.open.set(incident.id, { incident, lastSeen, receivedAt });
    if (this.open.size > this.maxOpen) this.evictOldest();
    return incident;
  }

  /** Take a list (a live frame); returns the values that were news. */
  upsertAll(incidents, receivedAt = performance.now()) {
    return listOf(incidents)
      .map((incident) => this.upsert(incident, receivedAt))
      .filter((incident) => incident !== null);
  }

  /**
   * A complete list of what is open, fetched by a request sent at `requestedAt`
   * (a snapshot, or a poll that returned fewer than its limit): anything held
   * from before that request and missing from the list has closed meanwhile.
   */
  reconcile(incidents, requestedAt, complete = true) {
    const changed = this.upsertAll(incidents);
    if (!complete) return changed;
    const listed = new Set(listOf(incidents).filter(isIncident).map((incident) => incident.id));
    for (const [id, held] of this.open) {
      if (!listed.has(id) && held.receivedAt < requestedAt) this.open.delete(id);
    }
    return changed;
  }

  /** The `limit` most recently active open incidents, newest first. */
  newest(limit) {
    return [...this.open.values()]
      .sort((a, b) => b.lastSeen - a.lastSeen || (a.incident.id < b.incident.id ? -1 : 1))
      .slice(0, limit)
      .map((held) => held.incident);
  }

  evictOldest() {
    let oldest = null;
    for (const [id, held] of this.open) if (oldest === null || held.lastSeen < oldest[1]) oldest = [id, held.lastSeen];
    if (oldest) this.open.delete(oldest[0]);
  }
}

/** A copy older than the one held: earlier activity, or as recent with fewer events. */
function isOlder(incident, lastSeen, held) {
  if (lastSeen !== held.lastSeen) return lastSeen < held.lastSeen;
  if (incident.status !== "open") return false; // closing keeps last_seen: always news
  return (incident.event_count ?? 0) < (held.incident.event_count ?? 0);
}

/**
 * The #incidents list: one focusable button per incident, newest first, at most
 * `maxItems`. Items are kept per id and updated in place, so a frame arriving
 * while someone tabs through the list does not take their focus away.
 */
export class IncidentList {
  /**
   * @param {HTMLElement} list the <ul id="incidents">
   * @param {HTMLElement} count where "N open" goes
   * @param {{onSelect: (id: string) => void, now: () => number, stats: object, maxItems?: number}} options
   */
  constructor(list, count, { onSelect, now, stats, maxItems = 50 }) {
    this.list = list;
    this.count = count;
    this.onSelect = onSelect;
    this.now = now;
    this.stats = stats;
    this.maxItems = maxItems;
    this.items = new Map(); // id -> {item, button, age, incident}
    this.empty = el("li", { className: "incident-empty", text: "No open incidents" });
    this.list.replaceChildren(this.empty);
  }

  /** Show `incidents` (newest first, already cut) out of `total` (`noun`: "open", or "in window"). */
  render(incidents, total, selectedId, noun = "open") {
    const wanted = incidents.slice(0, this.maxItems);
    const keep = new Set(wanted.map((incident) => incident.id));
    for (const id of this.items.keys()) if (!keep.has(id)) this.items.delete(id);
    const nodes = wanted.map((incident) => this.itemFor(incident, selectedId).item);
    this.empty.textContent = noun === "open" ? "No open incidents" : `No incidents ${noun}`;
    if (nodes.length === 0) nodes.push(this.empty);
    if (!sameChildren(this.list, nodes)) {
      const focused = document.activeElement;
      this.list.replaceChildren(...nodes);
      if (focused && focused !== document.activeElement && this.list.contains(focused)) focused.focus();
    }
    this.count.textContent = total > wanted.length ? `${wanted.length} of ${total} ${noun}` : `${total} ${noun}`;
    this.stats.incidentsShown = wanted.length;
  }

  /** Refresh the ages only (a clock tick, no new data). */
  tick() {
    for (const entry of this.items.values()) entry.age.textContent = this.ageOf(entry.incident);
  }

  ageOf(incident) {
    const opened = Date.parse(incident.opened_at);
    return Number.isNaN(opened) ? "" : shortDuration((this.now() - opened) / 1000);
  }

  itemFor(incident, selectedId) {
    let entry = this.items.get(incident.id);
    if (!entry) {
      entry = this.build(incident);
      this.items.set(incident.id, entry);
    }
    if (entry.incident !== incident) this.fill(entry, incident);
    entry.button.setAttribute("aria-pressed", String(incident.id === selectedId));
    return entry;
  }

  build(incident) {
    const kind = incidentKind(incident);
    const tag = el("span", { className: "i-kind", text: kind.label });
    const age = el("span", { className: "i-age" });
    const key = el("span", { className: "i-key" });
    const meta = el("span", { className: "i-meta" });
    const button = el("button", { className: "incident-button" }, [tag, age, key, meta]);
    button.type = "button";
    button.addEventListener("click", () => this.onSelect(incident.id));
    const item = el("li", { className: "incident-item", dataset: { id: incident.id, kind: incident.kind } }, [button]);
    item.style.setProperty("--kind-color", kind.color);
    return { item, button, age, key, meta, incident: null };
  }

  fill(entry, incident) {
    entry.incident = incident;
    entry.key.textContent = shortKey(incident);
    entry.key.title = printable(incident.key, KEY_TITLE_MAX);
    entry.meta.textContent = metaLine(incident);
    entry.age.textContent = this.ageOf(incident);
  }
}

/** "3 sensors · 1 source", with the ports of a scan or the fingerprint of a campaign. */
export function metaLine(incident) {
  const parts = [plural(listOf(incident.sensors).length, "sensor"), plural(sourceCount(incident), "source")];
  if (incident.kind === "vertical_scan" || incident.kind === "horizontal_scan") {
    parts.push(plural(listOf(incident.ports).length, "port"));
  }
  if (incident.kind === "campaign" && incident.fingerprint) parts.push(fingerprintLabel(incident.fingerprint));
  return parts.join(" · ");
}

function sameChildren(parent, nodes) {
  if (parent.children.length !== nodes.length) return false;
  return nodes.every((node, index) => parent.children[index] === node);
}
