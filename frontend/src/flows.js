// Flows: at rates where single arcs become noise, events are drawn as flows
// from a source country to a sensor, one line per pair whose width grows with
// its recent count (which halves every HALF_LIFE_MS). Bounded: at most
// maxFlows pairs; the least recently fed one makes room. Also the rate meter
// that decides when the page switches to flows and back.

import { greatCircle, strokeArc } from "./arcs.js";

const HALF_LIFE_MS = 2000;
const FORGET_BELOW = 0.3;

export class FlowLayer {
  constructor({ maxFlows = 400 } = {}) {
    this.maxFlows = maxFlows;
    this.flows = new Map(); // key -> {arc, color, count, at}
  }

  get idle() {
    return this.flows.size === 0;
  }

  /** One event from `from` to `to` ([lon, lat]); `key` names the pair. */
  add(key, from, to, color, now) {
    let flow = this.flows.get(key);
    if (flow) {
      this.flows.delete(key); // re-inserted last: insertion order is the eviction order
      flow.count = decayed(flow, now) + 1;
      flow.color = color;
    } else {
      flow = { arc: greatCircle(from, to), color, count: 1 };
      if (this.flows.size >= this.maxFlows) this.flows.delete(this.flows.keys().next().value);
    }
    flow.at = now;
    this.flows.set(key, flow);
  }

  clear() {
    this.flows.clear();
  }

  draw(ctx, path, now) {
    ctx.save();
    ctx.lineCap = "round";
    for (const [key, flow] of this.flows) {
      const count = decayed(flow, now);
      if (count < FORGET_BELOW) {
        this.flows.delete(key);
        continue;
      }
      ctx.globalAlpha = Math.min(0.85, 0.25 + count / 40);
      ctx.strokeStyle = flow.color;
      ctx.lineWidth = Math.min(14, 1 + 1.6 * Math.log2(1 + count));
      strokeArc(ctx, path, flow.arc, 0, 1);
    }
    ctx.restore();
  }
}

function decayed(flow, now) {
  return flow.count * 0.5 ** (Math.max(0, now - flow.at) / HALF_LIFE_MS);
}

/** Events per second over the last few seconds, with hysteresis for the flows switch. */
export class RateMeter {
  constructor({ flowsAbove = 300, arcsBelow = 150, windowMs = 3000 } = {}) {
    this.flowsAbove = flowsAbove;
    this.arcsBelow = arcsBelow;
    this.windowMs = windowMs;
    this.samples = []; // [ms, count], bounded by the window
    this.flowing = false;
  }

  add(count, now = performance.now()) {
    this.samples.push([now, count]);
    this.trim(now);
  }

  rate(now = performance.now()) {
    this.trim(now);
    const total = this.samples.reduce((sum, [, count]) => sum + count, 0);
    return (total * 1000) / this.windowMs;
  }

  /** Whether flows should be drawn now. */
  update(now = performance.now()) {
    const rate = this.rate(now);
    if (!this.flowing && rate > this.flowsAbove) this.flowing = true;
    else if (this.flowing && rate < this.arcsBelow) this.flowing = false;
    return this.flowing;
  }

  trim(now) {
    while (this.samples.length && now - this.samples[0][0] > this.windowMs) this.samples.shift();
  }
}
