// The highlight of one incident on the map, drawn by the map's one animation
// loop (map.js) like the arc layer: a fan-out of arcs from the source(s) to the
// sensors they reached, or, for an epidemic, the sensors lighting up one after
// another in the order the payload reached them, each with its order number.
// No timers: the layer ends itself when it is drawn after its deadline.

import { dot, greatCircle, strokeArc } from "./arcs.js";
import { incidentKind, listOf } from "./incidents.js";

const HIGHLIGHT_MS = 60000; // an unattended wall returns to the plain live map
const COMET_MS = 2400; // one pass of the bright head along a fan-out arc
const COMET_LENGTH = 0.3;
const STEP_MS = 900; // epidemic: between two sensors lighting up
const GROW_MS = 700; // epidemic: the arc from the delivering source grows in
const HOLD_MS = 3500; // epidemic: everything lit, before the spread replays
const MAX_LINKS = 200;
const MAX_STEPS = 100;
const SCRIM = "rgba(4, 7, 13, 0.55)"; // dims the rest of the map under the highlight

/**
 * @typedef {{sensor: (name: string) => ([number, number] | null), source: (ip: string) => ([number, number] | null)}} Places
 */

export class HighlightLayer {
  /**
   * @param {{highlighted: string|null, highlightArcs: number}} stats, updated in place
   * @param {() => void} onExpire called (from the animation loop) when a highlight timed out
   */
  constructor(stats, onExpire) {
    this.stats = stats;
    this.onExpire = onExpire;
    this.current = null;
    this.stats.highlighted = null;
    this.stats.highlightArcs = 0;
  }

  get active() {
    return this.current !== null;
  }

  /** Highlight `incident` from `now` (performance.now() clock) for HIGHLIGHT_MS. */
  show(incident, places, now) {
    this.current = { start: now, end: now + HIGHLIGHT_MS, ...plan(incident, places) };
    this.stats.highlighted = incident.id;
    this.stats.highlightArcs = this.current.links.length;
  }

  /** The same incident grew, or more places became known: redraw it, same clock. */
  update(incident, places) {
    if (this.current?.id !== incident.id) return;
    Object.assign(this.current, plan(incident, places));
    this.stats.highlightArcs = this.current.links.length;
  }

  /** Keep the highlight for another HIGHLIGHT_MS (someone is looking at it). */
  extend(now) {
    if (this.current) this.current.end = now + HIGHLIGHT_MS;
  }

  clear() {
    this.current = null;
    this.stats.highlighted = null;
    this.stats.highlightArcs = 0;
  }

  draw(ctx, path, projection, now) {
    const current = this.current;
    if (!current) return;
    if (now > current.end) {
      this.clear();
      this.onExpire();
      return;
    }
    ctx.save();
    ctx.globalAlpha = 1;
    ctx.fillStyle = SCRIM;
    ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
    ctx.lineCap = "round";
    const elapsed = now - current.start;
    if (current.kind === "epidemic") drawSpread(ctx, path, projection, current, elapsed);
    else drawFanOut(ctx, path, projection, current, elapsed);
    ctx.restore();
  }
}

/** What to draw for an incident with the places known now. */
function plan(incident, places) {
  const color = incidentKind(incident).color;
  if (incident.kind === "epidemic") return { id: incident.id, kind: incident.kind, color, ...spreadOf(incident, places) };
  return { id: incident.id, kind: incident.kind, color, ...fanOutOf(incident, places) };
}

/** Source -> sensor pairs: who reached what, from the timeline, then every sensor not covered. */
function fanOutOf(incident, places) {
  const sources = listOf(incident.sources);
  const fallbackSource = sources[0] ?? incident.key;
  const pairs = new Map();
  for (const step of listOf(incident.timeline)) {
    const source = step?.source ?? fallbackSource;
    if (typeof step?.sensor === "string") pairs.set(`${source}\u0000${step.sensor}`, [source, step.sensor]);
  }
  const covered = new Set([...pairs.values()].map(([, sensor]) => sensor));
  for (const sensor of listOf(incident.sensors)) {
    if (!covered.has(sensor)) pairs.set(`${fallbackSource}\u0000${sensor}`, [fallbackSource, sensor]);
  }
  const links = [];
  const sourcePoints = new Map();
  for (const [source, sensor] of pairs.values()) {
    if (links.length >= MAX_LINKS) break;
    const from = places.source(source);
    const to = places.sensor(sensor);
    if (!from || !to) continue;
    sourcePoints.set(source, from);
    links.push({ ...greatCircle(from, to), phase: (links.length * 0.137) % 1 });
  }
  const sensors = listOf(incident.sensors)
    .slice(0, MAX_LINKS)
    .map((name) => ({ name: String(name), at: places.sensor(name) }))
    .filter((sensor) => sensor.at);
  // one source is worth naming on the map; a campaign's dozens are not
  const label = sourcePoints.size === 1 ? String([...sourcePoints.keys()][0]).slice(0, 45) : null;
  return { links, sensors, sources: [...sourcePoints.values()], label };
}

/** Epidemic: sensors in the order of their first sighting, with the arc from who delivered it. */
function spreadOf(incident, places) {
  const seen = new Set();
  const steps = [];
  const timeline = listOf(incident.timeline).length
    ? listOf(incident.timeline)
    : listOf(incident.sensors).map((sensor) => ({ sensor }));
  for (const step of timeline) {
    if (typeof step?.sensor !== "string" || seen.has(step.sensor)) continue;
    seen.add(step.sensor);
    if (steps.length >= MAX_STEPS) break;
    const order = seen.size; // numbered even when the sensor has no place on the map
    const at = places.sensor(step.sensor);
    if (!at) continue;
    const from = step.source ? places.source(step.source) : null;
    steps.push({ order, name: step.sensor, at, arc: from ? greatCircle(from, at) : null });
  }
  const links = steps.filter((step) => step.arc).map((step) => step.arc);
  return { steps, links };
}

function drawFanOut(ctx, path, projection, current, elapsed) {
  ctx.strokeStyle = current.color;
  for (const link of current.links) {
    ctx.globalAlpha = 0.45;
    ctx.lineWidth = 1.6;
    strokeArc(ctx, path, link, 0, 1);
    const head = ((elapsed / COMET_MS + link.phase) % 1) * (1 + COMET_LENGTH);
    if (head > 0) {
      ctx.globalAlpha = 0.95;
      ctx.lineWidth = 3;
      strokeArc(ctx, path, link, Math.max(0, head - COMET_LENGTH), Math.min(1, head));
    }
  }
  const breathe = 0.5 + 0.5 * Math.sin(elapsed / 320);
  for (const sensor of current.sensors) {
    const xy = projection(sensor.at);
    ring(ctx, xy, 8 + 4 * breathe, current.color, 0.9);
    if (xy) name(ctx, sensor.name, xy[0] + 14, xy[1]);
  }
  for (const point of current.sources) {
    const xy = projection(point);
    if (!xy) continue;
    dot(ctx, xy, 6, current.color, 0.95);
    dot(ctx, xy, 2.5, "#ffffff", 1);
  }
  if (current.label && current.sources.length === 1) {
    const xy = projection(current.sources[0]);
    if (xy) label(ctx, current.label, xy[0] + 10, xy[1] - 10, current.color);
  }
}

function drawSpread(ctx, path, projection, current, elapsed) {
  const cycle = current.steps.length * STEP_MS + HOLD_MS;
  const t = elapsed % cycle;
  ctx.textBaseline = "middle";
  current.steps.forEach((step, index) => {
    const since = t - index * STEP_MS;
    const xy = projection(step.at);
    if (!xy) return;
    if (since < 0) {
      ring(ctx, xy, 9, current.color, 0.3); // not reached yet
      return;
    }
    if (step.arc) {
      ctx.strokeStyle = current.color;
      ctx.globalAlpha = 0.7;
      ctx.lineWidth = 2;
      strokeArc(ctx, path, step.arc, 0, Math.min(1, since / GROW_MS));
    }
    if (since < GROW_MS + 600 && since > GROW_MS) {
      ring(ctx, xy, 10 + 24 * ((since - GROW_MS) / 600), current.color, 1 - (since - GROW_MS) / 600);
    }
    dot(ctx, xy, 10, current.color, 0.95);
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#04070d";
    ctx.font = "bold 12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(String(step.order), xy[0], xy[1] + 0.5);
    name(ctx, step.name, xy[0] + 14, xy[1]);
  });
}

/** A sensor's name beside its highlight, bright over the dimmed map. */
function name(ctx, text, x, y) {
  ctx.font = "600 13px system-ui, sans-serif";
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  ctx.globalAlpha = 1;
  ctx.fillStyle = "#eaf6ff";
  ctx.fillText(text.slice(0, 40), x, y);
}

function ring(ctx, xy, radius, color, alpha) {
  if (!xy) return;
  ctx.globalAlpha = Math.max(0, alpha);
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.arc(xy[0], xy[1], radius, 0, 2 * Math.PI);
  ctx.stroke();
}

function label(ctx, text, x, y, color) {
  ctx.font = "bold 13px ui-monospace, monospace";
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  ctx.globalAlpha = 0.85;
  ctx.fillStyle = "#04070d";
  ctx.fillRect(x - 4, y - 10, ctx.measureText(text).width + 8, 20);
  ctx.globalAlpha = 1;
  ctx.fillStyle = color;
  ctx.fillText(text, x, y);
}
