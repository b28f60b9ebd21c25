// The selected incident: one at a time, chosen in the #incidents list. Selecting
// highlights it on the map and opens the details panel; selecting it again,
// Escape, the close button or the highlight's time-out ends both. While selected
// it follows the incident as it grows, fetches its full member lists
// (GET /api/v1/incidents/{id}; live frames carry the first 50) and looks up the
// places of its sources.

import { listOf } from "./incidents.js";
import { fetchJSON } from "./poll.js";

export class Selection {
  /**
   * @param {{book: import("./incidents.js").IncidentBook,
   *          highlight: import("./highlight.js").HighlightLayer,
   *          details: import("./details.js").DetailsPanel,
   *          locator: import("./locate.js").SourceLocator,
   *          sensorAt: (name: string) => ([number, number] | null),
   *          onChange: () => void, wake: () => void}} parts
   */
  constructor({ book, highlight, details, locator, sensorAt, onChange, wake }) {
    this.book = book;
    this.highlight = highlight;
    this.details = details;
    this.locator = locator;
    this.places = { sensor: sensorAt, source: (ip) => locator.at(ip) };
    this.onChange = onChange;
    this.wake = wake;
    this.id = null;
    this.incident = null;
  }

  toggle(id) {
    if (this.id === id) this.clear();
    else this.select(id);
  }

  select(id) {
    const incident = this.book.get(id);
    if (!incident) return;
    this.id = id;
    this.incident = incident;
    this.highlight.show(incident, this.places, performance.now());
    this.details.showIncident(incident);
    this.onChange();
    this.wake();
    this.locateSources(incident);
    fetchJSON(`/api/v1/incidents/${encodeURIComponent(id)}`)
      .then((full) => {
        if (full?.id === this.id) this.update(full);
      })
      .catch((error) => console.warn("honeyatlas: incident:", error.message));
  }

  /** A newer value of the selected incident (a live frame, a poll, the full fetch). */
  update(incident) {
    if (incident.id !== this.id || !isNewer(incident, this.incident)) return;
    this.incident = incident;
    this.highlight.update(incident, this.places);
    this.details.showIncident(incident, { refresh: true });
    this.locateSources(incident);
  }

  /** Places changed (sensors polled): redraw the highlight with them. */
  replot() {
    if (this.incident) this.highlight.update(this.incident, this.places);
  }

  /** Someone is reading the details: keep the highlight up. */
  touch() {
    this.highlight.extend(performance.now());
  }

  clear() {
    if (this.id === null) return;
    this.id = null;
    this.incident = null;
    this.highlight.clear();
    this.details.hide();
    this.onChange();
    this.wake();
  }

  /** The highlight timed out (called from the animation loop). */
  expired() {
    this.clear();
  }

  locateSources(incident) {
    const sources = [...listOf(incident.sources), ...listOf(incident.timeline).map((step) => step?.source)];
    if (sources.length === 0 && incident.kind !== "epidemic" && incident.kind !== "campaign") sources.push(incident.key);
    this.locator.locate(sources).then((found) => {
      if (found && this.incident?.id === incident.id) {
        this.highlight.update(this.incident, this.places);
        this.wake();
      }
    });
  }
}

/** The full fetch may answer after a live frame: keep whichever is further along. */
function isNewer(incident, held) {
  if (!held) return true;
  const a = Date.parse(incident.last_seen);
  const b = Date.parse(held.last_seen);
  if (a !== b) return a > b;
  if (incident.status !== held.status) return incident.status !== "open";
  return (
    (incident.event_count ?? 0) > (held.event_count ?? 0) ||
    listOf(incident.sources).length > listOf(held.sources).length ||
    listOf(incident.timeline).length > listOf(held.timeline).length
  );
}
