// Animated attack arcs and impact pulses, bounded: at most `maxArcs` arcs and
// `maxPulses` pulses animate at once; what does not fit is counted, not queued.
// Coordinates are [lon, lat]; drawing goes through a d3 geoPath so great
// circles are resampled and cut at the antimeridian by the projection.

import { geoDistance, geoInterpolate } from "d3-geo";

const TRAVEL_MS = 1200; // head runs from attacker to sensor
const FADE_MS = 900; // then the whole arc fades out
const PULSE_MS = 1000;
const TRAIL = 0.35; // bright part of the arc, as a fraction of its length

export class ArcLayer {
  /** @param {{arcsDrawn: number, arcsSkipped: number, pulsesSkipped: number}} stats, updated in place */
  constructor(stats, { maxArcs = 300, maxPulses = 300 } = {}) {
    this.stats = stats;
    this.maxArcs = maxArcs;
    this.maxPulses = maxPulses;
    this.arcs = [];
    this.pulses = [];
  }

  get idle() {
    return this.arcs.length === 0 && this.pulses.length === 0;
  }

  /** The source (as given to addArc) of an arc drawn within `radius` CSS pixels of (x, y), or null. */
  sourceAt(projection, x, y, now, radius = 6) {
    for (const arc of this.arcs) {
      if (!arc.source || now < arc.start) continue;
      const points = [arc.from, ...arc.samples.map(([, point]) => point), arc.to];
      for (const point of points) {
        const at = projection(point);
        if (at && Math.hypot(at[0] - x, at[1] - y) <= radius) return arc.source;
      }
    }
    return null;
  }

  /** Forget every arc and pulse (the view changed). */
  clear() {
    this.arcs = [];
    this.pulses = [];
  }

  /** Start an arc at time `start` (performance.now() clock); false when over the cap. */
  addArc(from, to, color, start, source = null) {
    if (this.arcs.length >= this.maxArcs) {
      this.stats.arcsSkipped += 1;
      return false;
    }
    this.arcs.push({ ...greatCircle(from, to), color, start, landed: false, source });
    this.stats.arcsDrawn += 1;
    return true;
  }

  addPulse(at, color, start) {
    if (this.pulses.length >= this.maxPulses) {
      this.stats.pulsesSkipped += 1;
      return;
    }
    this.pulses.push({ at, color, start });
  }

  /** Draw every live arc and pulse for time `now`, dropping the finished ones. */
  draw(ctx, path, projection, now) {
    ctx.save();
    ctx.lineCap = "round";
    this.arcs = this.arcs.filter((arc) => this.drawArc(ctx, path, projection, arc, now));
    this.pulses = this.pulses.filter((pulse) => drawPulse(ctx, projection, pulse, now));
    ctx.restore();
  }

  drawArc(ctx, path, projection, arc, now) {
    const elapsed = now - arc.start;
    if (elapsed < 0) return true; // staggered arc, not started yet
    if (elapsed > TRAVEL_MS + FADE_MS) return false;
    const head = Math.min(1, elapsed / TRAVEL_MS);
    const fade = elapsed <= TRAVEL_MS ? 1 : 1 - (elapsed - TRAVEL_MS) / FADE_MS;
    if (head === 1 && !arc.landed) {
      arc.landed = true;
      this.addPulse(arc.to, arc.color, arc.start + TRAVEL_MS);
    }

    ctx.strokeStyle = arc.color;
    // faint full trail, then a brighter, wider tail behind the head
    ctx.globalAlpha = 0.28 * fade;
    ctx.lineWidth = 1.2;
    strokeArc(ctx, path, arc, 0, head);
    ctx.globalAlpha = 0.9 * fade;
    ctx.lineWidth = 2.2;
    strokeArc(ctx, path, arc, Math.max(0, head - TRAIL), head);

    const source = projection(arc.from);
    if (source) dot(ctx, source, 2.5, arc.color, 0.8 * fade);
    if (head < 1) {
      const tip = projection(arc.interpolate(head));
      if (tip) {
        dot(ctx, tip, 3.5, arc.color, fade);
        dot(ctx, tip, 1.5, "#ffffff", fade);
      }
    }
    return true;
  }
}

/** The great circle from `from` to `to` ([lon, lat]), resampled once so drawing it is cheap. */
export function greatCircle(from, to) {
  const segments = Math.max(8, Math.min(64, Math.ceil(geoDistance(from, to) * 24)));
  const interpolate = geoInterpolate(from, to);
  const samples = [];
  for (let i = 1; i < segments; i += 1) samples.push([i / segments, interpolate(i / segments)]);
  return { from, to, interpolate, samples };
}

/** Stroke the part of a greatCircle between fractions t0 and t1 of its length. */
export function strokeArc(ctx, path, arc, t0, t1) {
  const coordinates = [arc.interpolate(t0)];
  for (const [t, point] of arc.samples) if (t > t0 && t < t1) coordinates.push(point);
  coordinates.push(arc.interpolate(t1));
  ctx.beginPath();
  path({ type: "LineString", coordinates });
  ctx.stroke();
}

function drawPulse(ctx, projection, pulse, now) {
  const elapsed = now - pulse.start;
  if (elapsed < 0) return true;
  if (elapsed > PULSE_MS) return false;
  const point = projection(pulse.at);
  if (!point) return false;
  const t = elapsed / PULSE_MS;
  ctx.globalAlpha = 1 - t;
  ctx.strokeStyle = pulse.color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.arc(point[0], point[1], 3 + 20 * t, 0, 2 * Math.PI);
  ctx.stroke();
  return true;
}

export function dot(ctx, [x, y], radius, color, alpha) {
  ctx.globalAlpha = alpha;
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.arc(x, y, radius, 0, 2 * Math.PI);
  ctx.fill();
}
