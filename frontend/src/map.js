// The world map: a devicePixelRatio-aware canvas, the projection fitted to it,
// a cached basemap layer, sensor markers (one look per status), and the one
// requestAnimationFrame loop that draws the arc layer and the incident
// highlight. The loop sleeps while nothing moves and is woken by wake().

import { geoGraticule10, geoNaturalEarth1, geoPath } from "d3-geo";
import { feature, mesh } from "topojson-client";

const THEME = {
  ocean: "#060b14",
  sphereEdge: "#1b2a40",
  graticule: "rgba(90, 130, 180, 0.08)",
  land: "#142236",
  borders: "rgba(120, 160, 210, 0.28)",
  sensor: "#39f0ff",
  sensorSilent: "#ffb020",
  sensorNeverSeen: "#5d6f86",
  sensorLabel: "rgba(200, 235, 255, 0.85)",
};

export class WorldMap {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {import("./arcs.js").ArcLayer} arcs
   * @param {import("./highlight.js").HighlightLayer} highlight
   * @param {() => {left: number, top: number, right: number, bottom: number}} insets
   *   CSS pixels of the canvas covered by panels; the globe is fitted to the rest.
   */
  constructor(canvas, arcs, highlight, insets) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.arcs = arcs;
    this.highlight = highlight;
    this.insets = insets;
    this.projection = geoNaturalEarth1();
    this.path = geoPath(this.projection, this.ctx);
    this.basemap = document.createElement("canvas");
    this.countries = null;
    this.borders = null;
    this.sensors = [];
    this.dpr = 1;
    this.frame = null;
  }

  async load(topologyURL) {
    const response = await fetch(topologyURL);
    if (!response.ok) throw new Error(`${topologyURL}: HTTP ${response.status}`);
    const topology = await response.json();
    this.countries = feature(topology, topology.objects.countries);
    this.borders = mesh(topology, topology.objects.countries, (a, b) => a !== b);
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
    this.projection.fitExtent(
      [
        [left + pad, top + pad],
        [Math.max(left + pad + 1, width - right - pad), Math.max(top + pad + 1, height - bottom - pad)],
      ],
      { type: "Sphere" },
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
    this.drawSensors(ctx);
    this.arcs.draw(ctx, this.path, this.projection, now);
    this.highlight.draw(ctx, this.path, this.projection, now);
    if (!this.arcs.idle || this.highlight.active) this.wake();
  }

  drawSensors(ctx) {
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    for (const sensor of this.sensors) {
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
        ctx.fillText(`${sensor.label} · silent`, x + 11, y);
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
      ctx.fillText(sensor.label, x + 8, y);
    }
    ctx.globalAlpha = 1;
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
