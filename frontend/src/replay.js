// Replay of a stored window: pages of GET /api/v1/events?order=asc for the
// window and filters, played at 1x to 1000x on the map's own animation loop
// (tick() is called by map.js each frame), drawn by the same arc layer as live
// events. The count of replayed events starts at the number of events before
// the position (exact, from the summary) so at the end it equals the window's
// total. Memory is bounded: at most two pages are buffered.

import { fetchJSON } from "./poll.js";

const PAGE = 5000; // events a page: fewer round trips at 1000x (the API allows 10,000)
const REFILL_BELOW = 500;
const MAX_EMIT_PER_FRAME = 5000; // a dense second at 1000x is drawn over a few frames

export class Replay {
  /**
   * @param {{onEvents: (events: object[]) => void, onState: (state: object) => void, wake: () => void}} options
   */
  constructor({ onEvents, onState, wake }) {
    this.onEvents = onEvents;
    this.onState = onState;
    this.wake = wake;
    this.speed = 1000;
    this.reset(null, null);
  }

  reset(params, window) {
    this.generation = (this.generation ?? 0) + 1;
    this.params = params;
    this.since = window ? window[0].getTime() : 0;
    this.until = window ? window[1].getTime() : 0;
    this.position = this.since;
    this.pagesSince = this.since; // the since of the page sequence the cursor belongs to
    this.buffer = [];
    this.cursor = null;
    this.started = false; // the first page was asked for
    this.exhausted = false; // no page after the buffered ones
    this.fetching = false;
    this.playing = false;
    this.count = 0;
    this.lastFrame = null;
    this.report();
  }

  /** Load a window (API parameters of its filters, [since, until]); paused at its start. */
  load(params, window) {
    this.reset(params, window);
  }

  get done() {
    return this.started && this.exhausted && this.buffer.length === 0 && this.position >= this.until;
  }

  play() {
    if (!this.params) return;
    if (this.done) this.seek(0);
    this.playing = true;
    this.lastFrame = null;
    this.fill();
    this.report();
    this.wake();
  }

  pause() {
    this.playing = false;
    this.report();
  }

  setSpeed(speed) {
    if (Number.isFinite(speed) && speed > 0) this.speed = speed;
  }

  /** Paused: the next event, and the clock to it. */
  async step() {
    if (!this.params) return;
    this.playing = false;
    if (this.buffer.length === 0) await this.fill();
    const next = this.buffer.shift();
    if (next) {
      this.position = Math.max(this.position, Date.parse(next.ts));
      this.emit([next]);
    } else if (this.exhausted) this.position = this.until;
    this.report();
  }

  /** Jump to a fraction of the window; the count becomes the exact number before it. */
  async seek(fraction) {
    if (!this.params) return;
    const playing = this.playing;
    const params = this.params;
    const window = [new Date(this.since), new Date(this.until)];
    this.reset(params, window);
    const generation = this.generation;
    this.position = Math.round(this.since + Math.min(1, Math.max(0, fraction)) * (this.until - this.since));
    this.pagesSince = this.position;
    if (this.position > this.since) {
      const before = new URLSearchParams(params);
      before.set("since", new Date(this.since).toISOString());
      before.set("until", new Date(this.position).toISOString());
      try {
        const summary = await fetchJSON(`/api/v1/stats/summary?${before}`);
        if (generation !== this.generation) return;
        this.count = Number.isFinite(summary?.total) ? summary.total : 0;
      } catch (error) {
        console.warn("honeyatlas: replay position:", error.message);
      }
    }
    this.report();
    if (playing) this.play();
  }

  /** One frame of the map's loop; true while the replay wants more frames. */
  tick(now) {
    if (!this.playing) return false;
    const elapsed = this.lastFrame === null ? 0 : Math.min(250, now - this.lastFrame);
    this.lastFrame = now;
    const waiting = this.buffer.length === 0 && !this.exhausted;
    if (!waiting) this.position = Math.min(this.until, this.position + elapsed * this.speed);
    const due = [];
    while (this.buffer.length && due.length < MAX_EMIT_PER_FRAME && Date.parse(this.buffer[0].ts) <= this.position) {
      due.push(this.buffer.shift());
    }
    if (due.length) this.emit(due);
    if (this.buffer.length < REFILL_BELOW) this.fill();
    if (this.done) this.playing = false;
    this.report();
    return this.playing;
  }

  emit(events) {
    this.count += events.length;
    this.onEvents(events);
  }

  async fill() {
    if (this.fetching || this.exhausted || !this.params) return;
    this.fetching = true;
    const generation = this.generation;
    const query = new URLSearchParams(this.params);
    query.set("since", new Date(this.pagesSince).toISOString());
    query.set("until", new Date(this.until).toISOString());
    query.set("order", "asc");
    query.set("limit", String(PAGE));
    if (this.cursor) query.set("cursor", this.cursor);
    try {
      const page = await fetchJSON(`/api/v1/events?${query}`);
      if (generation !== this.generation) return;
      const events = Array.isArray(page?.events) ? page.events : [];
      this.started = true;
      this.buffer.push(...events);
      this.cursor = typeof page?.next_cursor === "string" ? page.next_cursor : null;
      this.exhausted = this.cursor === null;
    } catch (error) {
      if (generation === this.generation) this.playing = false;
      console.warn("honeyatlas: replay:", error.message);
    } finally {
      if (generation === this.generation) {
        this.fetching = false;
        this.report();
        if (this.playing) this.wake();
      }
    }
  }

  report() {
    this.onState({
      playing: this.playing,
      done: this.done,
      count: this.count,
      position: this.position,
      fraction: this.until > this.since ? (this.position - this.since) / (this.until - this.since) : 0,
    });
  }
}
