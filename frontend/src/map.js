// The world map: a devicePixelRatio-aware canvas, the projection fitted to it,
// a cached basemap layer, sensor markers, and the one requestAnimationFrame
// loop that draws the arc layer. The loop sleeps while nothing moves and is
// woken by wake().

import { geoGraticule10, geoNaturalEarth1, geoPath } from "d3-geo";
import { feature, mesh } from "topojson-client";

const THEME = {
  ocean: "#060b14",
  sphereEdge: "#1b2a40",
  graticule: "rgba(90, 130, 180, 0.08)",
  land: "#142236",
  borders: "rgba(120, 160, 210, 0.28)",
  sensor: "#39f0ff",
  sensorIdle: "#3b6b80",
  sensorLabel: "rgba(200, 235, 255, 0.85)",
};

export class WorldMap {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {import("./arcs.js").ArcLayer} arcs
   * @param {() => {left: number, top: number, right: number, bottom: number}} insets
   *   CSS pixels of the canvas covered by panels; the globe is fitted to the rest.
   */
  constructor(canvas, arcs, insets) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.arcs = arcs;
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

  /** @param {{name: string, label?: string, lon: number, lat: number, active: boolean}[]} sensors */
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
    if (!this.arcs.idle) this.wake();
  }

  drawSensors(ctx) {
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (const sensor of this.sensors) {
      const point = this.projection([sensor.lon, sensor.lat]);
      if (!point) continue;
      const [x, y] = point;
      const color = sensor.active ? THEME.sensor : THEME.sensorIdle;
      ctx.globalAlpha = 1;
      ctx.fillStyle = color;
      ctx.beginPath(); // a diamond, so sensors never read as attacker dots
      ctx.moveTo(x, y - 5);
      ctx.lineTo(x + 5, y);
      ctx.lineTo(x, y + 5);
      ctx.lineTo(x - 5, y);
      ctx.closePath();
      ctx.fill();
      ctx.fillStyle = THEME.sensorLabel;
      ctx.fillText(sensor.label, x + 8, y);
    }
  }
}
