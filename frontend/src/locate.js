// Where attacker addresses are on the map. Live events teach it for free (their
// src_geo); an address the page has not seen is looked up once through
// GET /api/v1/events?src_ip=IP&limit=1. Both the cache and the look-ups are
// bounded: a campaign with thousands of sources costs at most `maxLookups`
// requests per call, `parallel` at a time.

import { lonLat } from "./events.js";
import { fetchJSON } from "./poll.js";

const ADDRESS = /^[0-9A-Fa-f.:]{2,45}$/; // IPv4 or IPv6 text; anything else is a group key (a /24, an AS)

export class SourceLocator {
  constructor({ maxCached = 5000, maxLookups = 30, parallel = 4 } = {}) {
    this.maxCached = maxCached;
    this.maxLookups = maxLookups;
    this.parallel = parallel;
    this.places = new Map(); // ip -> [lon, lat] | null (looked up, not locatable)
  }

  /** [lon, lat] of a source address, or null when unknown. */
  at(ip) {
    return this.places.get(ip) ?? null;
  }

  /** Learn from a live event's src_geo. */
  remember(event) {
    const place = lonLat(event?.src_geo);
    if (place && typeof event.src_ip === "string") this.store(event.src_ip, place);
  }

  store(ip, place) {
    this.places.delete(ip); // re-inserted last: the map's order is the eviction order
    this.places.set(ip, place);
    if (this.places.size > this.maxCached) this.places.delete(this.places.keys().next().value);
  }

  /** Look up the addresses not known yet; resolves to true when any became known. */
  async locate(addresses) {
    const missing = [...new Set(addresses)]
      .filter((ip) => typeof ip === "string" && ADDRESS.test(ip) && !this.places.has(ip))
      .slice(0, this.maxLookups);
    let found = false;
    const worker = async () => {
      for (let ip = missing.shift(); ip !== undefined; ip = missing.shift()) {
        try {
          const page = await fetchJSON(`/api/v1/events?src_ip=${encodeURIComponent(ip)}&limit=1`);
          const place = lonLat(page?.events?.[0]?.src_geo);
          this.store(ip, place);
          found ||= place !== null;
        } catch (error) {
          console.warn("honeyatlas: locating a source:", error.message); // not cached: tried again next time
        }
      }
    };
    await Promise.all(Array.from({ length: this.parallel }, worker));
    return found;
  }
}
