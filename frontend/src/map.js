// The world map: a devicePixelRatio-aware canvas, the projection fitted to the
// area between the panels (the inhabited land, Antarctica left out), a cached
// basemap layer with the optional country choropleth, sensor markers (one look
// per status, labels kept out from under the panels), clicks on a country or a
// sensor or an arc, and the one requestAnimationFrame loop that runs the tickers (a
// replay), then draws flows, the arc layer and the incident highlight. The loop
// sleeps while nothing moves and is woken by wake().

import { geoCentroid, geoContains, geoGraticule10, geoNaturalEarth1, geoPath } from "d3-geo";
import { feature, mesh } from "topojson-client";
import { alpha2Of } from "./countries.js";

const THEMES = {
  dark: {
    ocean: "#060b14",
    sphereEdge: "#1b2a40",
    graticule: "rgba(90, 130, 180, 0.08)",
    land: "#142236",
    borders: "rgba(120, 160, 210, 0.28)",
    choropleth: [255, 90, 95],
    sensor: "#39f0ff",
    sensorSilent: "#ffb020",
    sensorNeverSeen: "#5d6f86",
    sensorLabel: "rgba(200, 235, 255, 0.85)",
  },
  light: {
    ocean: "#dfe9f3",
    sphereEdge: "#9fb3c8",
    graticule: "rgba(60, 90, 130, 0.10)",
    land: "#f7f9fb",
    borders: "rgba(60, 90, 130, 0.35)",
    choropleth: [200, 30, 40],
    sensor: "#006d80",
    sensorSilent: "#b86e00",
    sensorNeverSeen: "#7d8fa8",
    sensorLabel: "rgba(10, 30, 50, 0.9)",
  },
};
let THEME = THEMES.dark;
const ANTARCTICA = "010";
const SENSOR_HIT_PX = 10;

export class WorldMap {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {import("./arcs.js").ArcLayer} arcs
   * @param {import("./highlight.js").HighlightLayer} highlight
   * @param {() => {left: number, top: number, right: number, bottom: number}} insets
   *   CSS pixels of the canvas covered by panels; the globe is fitted to the rest.
   */
  constructor(canvas, arcs, highlight, insets,
    { flows = null, onCountry = () => {}, onSensor = () => {}, onSource = () => {} } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.arcs = arcs;
    this.highlight = highlight;
    this.flows = flows;
    this.insets = insets;
    this.tickers = [];
    this.choropleth = null; // alpha-2 -> count
    this.centroids = new Map(); // alpha-2 -> [lon, lat]
    this.land = { type: "Sphere" }; // what the projection is fitted to
    this.area = { left: 0, top: 0, right: 0, bottom: 0 }; // CSS px of the canvas the map may use
    this.projection = geoNaturalEarth1();
    this.path = geoPath(this.projection, this.ctx);
    this.basemap = document.createElement("canvas");
    this.countries = null;
    this.borders = null;
    this.sensors = [];
    this.dpr = 1;
    this.frame = null;
    this.labelBoxes = [];
    this.labelHeight = 13;
    canvas.addEventListener("click", (event) => {
      const [x, y] = [event.offsetX, event.offsetY];
      const sensor = this.sensorAt(x, y);
      if (sensor) return onSensor(sensor.name);
      const source = this.arcs.sourceAt(this.projection, x, y, performance.now());
      if (source) return onSource(source);
      const country = this.countryAt(x, y);
      if (country) onCountry(country);
    });
  }

  /** A function called each frame with the frame time; it returns true while it needs frames. */
  addTicker(tick) {
    this.tickers.push(tick);
  }

  setTheme(name) {
    THEME = THEMES[name] ?? THEMES.dark;
    this.drawBasemap();
    this.wake();
  }

  /** Fill countries by their count of sources (alpha-2 -> count), or null for none. */
  setChoropleth(counts) {
    this.choropleth = counts;
    this.drawBasemap();
    this.wake();
  }

  /** [[x0, y0], [x1, y1]]: where the land the projection is fitted to is drawn, in CSS pixels. */
  landBounds() {
    return geoPath(this.projection).bounds(this.land);
  }

  /** [lon, lat] of a country's centroid, or null. */
  centroidOf(alpha2) {
    return this.centroids.get(alpha2) ?? null;
  }

  countryAt(x, y) {
    if (!this.countries) return null;
    const point = this.projection.invert([x, y]);
    if (!point || !Number.isFinite(point[0])) return null;
    const found = this.countries.features.find((country) => geoContains(country, point));
    return found ? alpha2Of(found) : null;
  }

  sensorAt(x, y) {
    let best = null;
    let bestDistance = SENSOR_HIT_PX;
    // silent sensors first: their labels must not lose a place to an active one's
    const ordered = [...this.sensors].sort((a, b) => (b.status === "silent") - (a.status === "silent"));
    for (const sensor of ordered) {
      const point = this.projection([sensor.lon, sensor.lat]);
      if (!point) continue;
      const distance = Math.hypot(point[0] - x, point[1] - y);
      if (distance <= bestDistance) [best, bestDistance] = [sensor, distance];
    }
    return best;
  }

  async load(topologyURL) {
    const response = await fetch(topologyURL);
    if (!response.ok) throw new Error(`${topologyURL}: HTTP ${response.status}`);
    const topology = await response.json();
    this.countries = feature(topology, topology.objects.countries);
    this.borders = mesh(topology, topology.objects.countries, (a, b) => a !== b);
    this.land = { type: "FeatureCollection", features: this.countries.features.filter((c) => c.id !== ANTARCTICA) };
    for (const country of this.countries.features) {
      const code = alpha2Of(country);
      if (code) this.centroids.set(code, geoCentroid(country));
    }
    this.resize();
  }

  /** Refit to the canvas' CSS size and device pixel ratio; redraw the basemap. */
  resize() {
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    this.dpr = window.devicePixelRatio || 1;
    for (const canvas of [this.canvas, this.basemap]) {
      canvas.width = Math.round(width * this.dpr);
      canvas.height = Math.round(height * this.dpr);
    }
    let { left, top, right, bottom } = this.insets();
    if (width - left - right < width * 0.5) left = right = 0; // narrow screen: panels overlap the map
    if (height - top - bottom < height * 0.5) top = bottom = 0;
    const pad = 12;
    this.area = { left, top, right: width - right, bottom: height - bottom };
    this.projection.fitExtent(
      [
        [left + pad, top + pad],
        [Math.max(left + pad + 1, width - right - pad), Math.max(top + pad + 1, height - bottom - pad)],
      ],
      this.land,
    );
    this.drawBasemap();
    this.wake();
  }

  /** @param {{label: string, lon: number, lat: number, status: "active"|"silent"|"never_seen"}[]} sensors */
  setSensors(sensors) {
    this.sensors = sensors;
    this.wake();
  }

  drawBasemap() {
    const ctx = this.basemap.getContext("2d");
    const path = geoPath(this.projection, ctx);
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, this.basemap.width, this.basemap.height);

    ctx.beginPath();
    path({ type: "Sphere" });
    ctx.fillStyle = THEME.ocean;
    ctx.fill();
    ctx.beginPath();
    path(geoGraticule10());
    ctx.strokeStyle = THEME.graticule;
    ctx.lineWidth = 1;
    ctx.stroke();
    if (this.countries) {
      ctx.beginPath();
      path(this.countries);
      ctx.fillStyle = THEME.land;
      ctx.fill();
      if (this.choropleth) this.drawChoropleth(ctx, path);
      ctx.beginPath();
      path(this.borders);
      ctx.strokeStyle = THEME.borders;
      ctx.lineWidth = 0.6;
      ctx.stroke();
    }
    ctx.beginPath();
    path({ type: "Sphere" });
    ctx.strokeStyle = THEME.sphereEdge;
    ctx.lineWidth = 1.5;
    ctx.stroke();
  }

  drawChoropleth(ctx, path) {
    const max = Math.max(1, ...this.choropleth.values());
    const [r, g, b] = THEME.choropleth;
    for (const country of this.countries.features) {
      const count = this.choropleth.get(alpha2Of(country));
      if (!count) continue;
      ctx.beginPath();
      path(country);
      ctx.fillStyle = `rgba(${r}, ${g}, ${b}, ${(0.15 + 0.75 * (Math.log1p(count) / Math.log1p(max))).toFixed(3)})`;
      ctx.fill();
    }
  }

  wake() {
    if (this.frame === null) this.frame = requestAnimationFrame((now) => this.render(now));
  }

  render(now) {
    this.frame = null;
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.drawImage(this.basemap, 0, 0);
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    let ticking = false;
    for (const tick of this.tickers) ticking = tick(now) || ticking;
    this.drawSensors(ctx);
    this.flows?.draw(ctx, this.path, now);
    this.arcs.draw(ctx, this.path, this.projection, now);
    this.highlight.draw(ctx, this.path, this.projection, now);
    if (ticking || !this.arcs.idle || this.highlight.active || (this.flows && !this.flows.idle)) this.wake();
  }

  drawSensors(ctx) {
    const fontPx = this.canvas.clientWidth >= 2400 ? 20 : 11;
    ctx.font = `${fontPx}px system-ui, sans-serif`;
    this.labelBoxes = []; // labels drawn this frame: a label that would overlap one is left out
    this.labelHeight = fontPx + 2;
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    // silent sensors first: their labels must not lose a place to an active one's
    const ordered = [...this.sensors].sort((a, b) => (b.status === "silent") - (a.status === "silent"));
    for (const sensor of ordered) {
      const point = this.projection([sensor.lon, sensor.lat]);
      if (!point) continue;
      const [x, y] = point;
      ctx.globalAlpha = 1;
      if (sensor.status === "silent") {
        // a hollow ring in the warning colour, and the word: it used to send and stopped
        ctx.strokeStyle = THEME.sensorSilent;
        ctx.lineWidth = 2.5;
        ctx.beginPath();
        ctx.arc(x, y, 7, 0, 2 * Math.PI);
        ctx.stroke();
        ctx.fillStyle = THEME.sensorSilent;
        this.label(ctx, `${sensor.label} · silent`, x, y, 11);
        continue;
      }
      const neverSeen = sensor.status === "never_seen";
      ctx.globalAlpha = neverSeen ? 0.6 : 1;
      diamond(ctx, x, y, 5);
      if (neverSeen) {
        ctx.strokeStyle = THEME.sensorNeverSeen;
        ctx.lineWidth = 1.5;
        ctx.stroke();
      } else {
        ctx.fillStyle = THEME.sensor; // a diamond, so sensors never read as attacker dots
        ctx.fill();
      }
      ctx.fillStyle = neverSeen ? THEME.sensorNeverSeen : THEME.sensorLabel;
      this.label(ctx, sensor.label, x, y, 8);
    }
    ctx.globalAlpha = 1;
  }

  /**
   * A sensor's label right of its marker, or left when it would run under a panel or
   * over another label; none off the map or where both sides are taken.
   */
  label(ctx, text, x, y, gap) {
    const { left, top, right, bottom } = this.area;
    if (x < left || x > right || y < top || y > bottom) return;
    const width = ctx.measureText(text).width;
    const height = this.labelHeight;
    const free = (x0) =>
      x0 >= left && x0 + width <= right &&
      !this.labelBoxes.some((box) => x0 < box.x1 && x0 + width > box.x0 && Math.abs(y - box.y) < height);
    let x0 = null;
    if (free(x + gap)) x0 = x + gap;
    else if (free(x - gap - width)) x0 = x - gap - width;
    if (x0 === null) return;
    this.labelBoxes.push({ x0, x1: x0 + width, y });
    ctx.textAlign = "left";
    ctx.fillText(text, x0, y);
  }
}

function diamond(ctx, x, y, r) {
  ctx.beginPath();
  ctx.moveTo(x, y - r);
  ctx.lineTo(x + r, y);
  ctx.lineTo(x, y + r);
  ctx.lineTo(x - r, y);
  ctx.closePath();
}
