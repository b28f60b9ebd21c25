// The timeline (#timeline): GET /api/v1/stats/histogram of the view, stacked by
// event kind, drawn on a canvas; dragging across it selects a window (the page
// goes to history mode on it). A replay's position is a line on it. Redrawn on
// data, resize and pointer moves only: it has no animation loop of its own.

import { KIND_COLORS } from "./events.js";

const TARGET_BUCKETS = 120;

/** A bucket width (seconds, a multiple of 60) giving about TARGET_BUCKETS over the window. */
export function bucketSeconds(since, until) {
  const span = Math.max(60, (until - since) / 1000);
  return Math.max(60, Math.ceil(span / TARGET_BUCKETS / 60) * 60);
}

export class Timeline {
  /** @param {HTMLCanvasElement} canvas @param {{onSelect: (since: Date, until: Date) => void}} options */
  constructor(canvas, { onSelect }) {
    this.canvas = canvas;
    this.onSelect = onSelect;
    this.buckets = [];
    this.since = 0;
    this.until = 0;
    this.width = 60;
    this.brush = null; // [x0, x1] in CSS pixels while dragging
    this.marker = null; // ms of a replay position
    canvas.addEventListener("pointerdown", (event) => {
      canvas.setPointerCapture(event.pointerId);
      this.brush = [event.offsetX, event.offsetX];
      this.draw();
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!this.brush) return;
      this.brush[1] = event.offsetX;
      this.draw();
    });
    canvas.addEventListener("pointerup", () => this.release());
    canvas.addEventListener("pointercancel", () => {
      this.brush = null;
      this.draw();
    });
  }

  /** @param {{since: string, until: string, bucket_seconds: number, buckets: object[]}} histogram */
  show(histogram) {
    this.buckets = Array.isArray(histogram?.buckets) ? histogram.buckets : [];
    this.since = Date.parse(histogram?.since);
    this.until = Date.parse(histogram?.until);
    this.width = histogram?.bucket_seconds ?? 60;
    this.draw();
  }

  setMarker(ms) {
    this.marker = ms;
    this.draw();
  }

  release() {
    const brush = this.brush;
    this.brush = null;
    this.draw();
    if (!brush || Math.abs(brush[1] - brush[0]) < 4 || !(this.until > this.since)) return;
    const [a, b] = [Math.min(...brush), Math.max(...brush)].map((x) => this.timeAt(x));
    this.onSelect(new Date(a), new Date(b));
  }

  timeAt(x) {
    const width = this.canvas.clientWidth || 1;
    return Math.round(this.since + (Math.min(Math.max(x, 0), width) / width) * (this.until - this.since));
  }

  xAt(ms) {
    return ((ms - this.since) / (this.until - this.since)) * this.canvas.clientWidth;
  }

  draw() {
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!(this.until > this.since)) return;
    const axis = 14;
    const plot = height - axis;
    const max = Math.max(1, ...this.buckets.map((bucket) => bucket.count ?? 0));
    const barWidth = Math.max(1, (this.width * 1000 * width) / (this.until - this.since) - 1);
    for (const bucket of this.buckets) {
      const x = this.xAt(Date.parse(bucket.start));
      let y = plot;
      const kinds = bucket.kinds && typeof bucket.kinds === "object" ? Object.entries(bucket.kinds) : [["other", bucket.count]];
      for (const [kind, count] of kinds) {
        const h = (count / max) * (plot - 4);
        ctx.fillStyle = KIND_COLORS[kind] ?? KIND_COLORS.other;
        ctx.fillRect(x, y - h, barWidth, h);
        y -= h;
      }
    }
    ctx.fillStyle = getComputedStyle(canvas).color;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    ctx.fillText(label(this.since), 2, height);
    ctx.textAlign = "right";
    ctx.fillText(label(this.until), width - 2, height);
    ctx.textAlign = "center";
    ctx.fillText(`max ${max} per ${shortWidth(this.width)}`, width / 2, height);
    if (this.marker !== null && this.marker >= this.since && this.marker <= this.until) {
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(this.xAt(this.marker) - 1, 0, 2, plot);
    }
    if (this.brush) {
      const [a, b] = [Math.min(...this.brush), Math.max(...this.brush)];
      ctx.fillStyle = "rgba(57, 240, 255, 0.25)";
      ctx.fillRect(a, 0, b - a, plot);
    }
  }
}

function label(ms) {
  return `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function shortWidth(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  return `${Math.round(seconds / 60)} min`;
}
