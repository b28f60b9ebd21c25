// Composition root of the page: builds the map, the arc layer, the panels, the
// live stream and the pollers, and routes every message to them. The counters
// in window.__honeyatlas are part of the test contract.

import { ArcLayer } from "./arcs.js";
import { byId } from "./dom.js";
import { isDemo, kindColor, lonLat } from "./events.js";
import { LiveStream, liveURL } from "./live.js";
import { WorldMap } from "./map.js";
import {
  DroppedCounter,
  Ticker,
  buildLegend,
  showConnection,
  showDemoBanner,
  showSummary,
} from "./panels.js";
import { poll } from "./poll.js";

const POLL_MS = 5000;
const SEEN_IDS_MAX = 2000; // enough to recognise a snapshot re-sent after a reconnect
const BATCH_SPREAD_MS = 1000; // arcs of one batch start spread over this time
const SNAPSHOT_SPREAD_MS = 2500;

const stats = { arcsDrawn: 0, eventsSeen: 0, arcsSkipped: 0, pulsesSkipped: 0, mapReady: false };
window.__honeyatlas = stats;

const arcs = new ArcLayer(stats);
const map = new WorldMap(byId("map"), arcs, panelInsets);
const ticker = new Ticker(byId("ticker"));
const dropped = new DroppedCounter(byId("dropped"));
const seenIds = new Set();
const sensorsByName = new Map();
let demoEvents = false; // sticky: one demo event marks this screen as demo

/** Canvas area hidden by the side panels, so the globe is fitted beside them. */
function panelInsets() {
  const width = window.innerWidth;
  const left = byId("side-left").getBoundingClientRect();
  const right = byId("side-right").getBoundingClientRect();
  const top = byId("topbar").getBoundingClientRect();
  return { left: left.right, right: width - right.left, top: top.bottom, bottom: 0 };
}

function firstSighting(event) {
  if (event.id === undefined) return true;
  if (seenIds.has(event.id)) return false;
  seenIds.add(event.id);
  if (seenIds.size > SEEN_IDS_MAX) seenIds.delete(seenIds.values().next().value);
  return true;
}

/** Where the sensor of this event sits: its dst_geo, else the sensor registry. */
function sensorPoint(event) {
  return lonLat(event.dst_geo) ?? sensorsByName.get(event.sensor) ?? null;
}

function ingest(events, spreadMs) {
  if (!Array.isArray(events)) return;
  const fresh = events.filter((event) => event && typeof event === "object" && firstSighting(event));
  const now = performance.now();
  const step = fresh.length > 1 ? spreadMs / fresh.length : 0;
  stats.eventsSeen += fresh.length;
  ticker.addAll(fresh);
  fresh.forEach((event, index) => {
    if (!demoEvents && isDemo(event)) {
      demoEvents = true;
      showDemoBanner(true);
    }
    const to = sensorPoint(event);
    if (!to) return;
    const from = lonLat(event.src_geo);
    const start = now + index * step;
    if (from) arcs.addArc(from, to, kindColor(event), start);
    else arcs.addPulse(to, kindColor(event), start); // loopback/private source: no arc
  });
  map.wake();
}

const handlers = {
  snapshot: (message) => ingest(message.events, SNAPSHOT_SPREAD_MS),
  events: (message) => ingest(message.events, BATCH_SPREAD_MS),
  dropped: (message) => dropped.add(message.count),
  heartbeat: () => {},
};

function showSensors(body) {
  const sensors = (Array.isArray(body?.sensors) ? body.sensors : []).filter((sensor) => !sensor.revoked);
  sensorsByName.clear();
  const markers = [];
  for (const sensor of sensors) {
    const point = lonLat(sensor);
    if (!point) continue;
    sensorsByName.set(sensor.name, point);
    markers.push({
      lon: point[0],
      lat: point[1],
      label: String(sensor.label || sensor.name),
      active: sensor.events_1h > 0,
    });
  }
  map.setSensors(markers);
  const demoSensors = sensors.some((sensor) => sensor.demo === true);
  showDemoBanner(demoSensors || demoEvents);
}

function dispatch(message) {
  if (Object.hasOwn(handlers, message.type)) handlers[message.type](message);
  // unknown types (e.g. "incident") are for later versions of the page
}

/** devicePixelRatio changes (zoom, another monitor) without always firing resize. */
function watchPixelRatio() {
  matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`).addEventListener(
    "change",
    () => {
      map.resize();
      watchPixelRatio();
    },
    { once: true },
  );
}

function reportPollError(error) {
  console.warn("honeyatlas:", error.message);
}

buildLegend(byId("legend"));
window.addEventListener("resize", () => map.resize());
watchPixelRatio();
map
  .load("/static/countries-110m.json")
  .then(() => {
    stats.mapReady = true; // the countries are drawn
  })
  .catch((error) => console.error("honeyatlas: map", error));
map.resize(); // draws the ocean and sensors while the topology loads

new LiveStream(liveURL(), {
  onMessage: dispatch,
  onState: showConnection,
}).start();
poll("/api/v1/stats/summary", POLL_MS, { onData: showSummary, onError: reportPollError });
poll("/api/v1/sensors", POLL_MS, { onData: showSensors, onError: reportPollError });
