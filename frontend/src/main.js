// Composition root of the page: builds the map, the arc layer, the panels, the
// incident list and its selection, the live stream and the pollers, and routes
// every message to them. The counters in window.__honeyatlas are part of the
// test contract.

import { ArcLayer } from "./arcs.js";
import { DetailsPanel } from "./details.js";
import { byId } from "./dom.js";
import { isDemo, kindColor, lonLat } from "./events.js";
import { HighlightLayer } from "./highlight.js";
import { IncidentBook, IncidentList } from "./incidents.js";
import { LiveStream, liveURL } from "./live.js";
import { SourceLocator } from "./locate.js";
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
import { Selection } from "./selection.js";
import { sensorMarkers, sensorsOf, showSensorHealth } from "./sensors.js";

const POLL_MS = 5000;
const INCIDENT_POLL_MS = 15000; // a fallback: the live stream pushes every change
const INCIDENT_POLL_LIMIT = 200; // as many as a snapshot lists
const AGE_TICK_MS = 5000;
const SEEN_IDS_MAX = 2000; // enough to recognise a snapshot re-sent after a reconnect
const BATCH_SPREAD_MS = 1000; // arcs of one batch start spread over this time
const SNAPSHOT_SPREAD_MS = 2500;

const stats = {
  arcsDrawn: 0,
  eventsSeen: 0,
  arcsSkipped: 0,
  pulsesSkipped: 0,
  mapReady: false,
  incidentsShown: 0,
  highlighted: null,
  highlightArcs: 0,
};
window.__honeyatlas = stats;

const arcs = new ArcLayer(stats);
const highlight = new HighlightLayer(stats, () => selection.expired());
const map = new WorldMap(byId("map"), arcs, highlight, panelInsets);
const ticker = new Ticker(byId("ticker"));
const dropped = new DroppedCounter(byId("dropped"));
const seenIds = new Set();
const sensorsByName = new Map();
const locator = new SourceLocator();
const book = new IncidentBook();
const incidentList = new IncidentList(byId("incidents"), byId("incident-count"), {
  onSelect: (id) => selection.toggle(id),
  now: serverNow,
  stats,
});
const details = new DetailsPanel(byId("incident-details"), {
  onClose: () => selection.clear(),
  onActivity: () => selection.touch(),
});
const selection = new Selection({
  book,
  highlight,
  details,
  locator,
  sensorAt: (name) => sensorsByName.get(name) ?? null,
  onChange: showIncidents,
  wake: () => map.wake(),
});
let demoEvents = false; // sticky: one demo event marks this screen as demo
let clockSkewMs = 0; // server clock minus this one, for the ages of incidents

function serverNow() {
  return Date.now() + clockSkewMs;
}

function syncClock(serverTime) {
  const server = Date.parse(serverTime);
  if (!Number.isNaN(server)) clockSkewMs = server - Date.now();
}

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
    locator.remember(event);
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

function showIncidents() {
  incidentList.render(book.newest(incidentList.maxItems), book.size, selection.id);
}

/** Incident values that were news: the list changes, and so may the selected one. */
function incidentsChanged(changed) {
  for (const incident of changed) if (incident.id === selection.id) selection.update(incident);
  showIncidents();
}

/** A complete-or-not list of the open incidents, as of `requestedAt` (performance.now()). */
function openIncidents(incidents, requestedAt, limit) {
  const list = Array.isArray(incidents) ? incidents : [];
  incidentsChanged(book.reconcile(list, requestedAt, list.length < limit));
}

const handlers = {
  snapshot: (message) => {
    syncClock(message.server_time);
    ingest(message.events, SNAPSHOT_SPREAD_MS);
    openIncidents(message.incidents, performance.now(), INCIDENT_POLL_LIMIT);
  },
  events: (message) => ingest(message.events, BATCH_SPREAD_MS),
  incidents: (message) => incidentsChanged(book.upsertAll(message.incidents)),
  dropped: (message) => dropped.add(message.count),
  heartbeat: (message) => syncClock(message.server_time),
};

function showSensors(body) {
  const sensors = sensorsOf(body);
  sensorsByName.clear();
  for (const sensor of sensors) {
    const point = lonLat(sensor);
    if (point && !sensor.revoked) sensorsByName.set(sensor.name, point);
  }
  map.setSensors(sensorMarkers(sensors));
  showSensorHealth(sensors, serverNow());
  selection.replot();
  const demoSensors = sensors.some((sensor) => sensor.demo === true && !sensor.revoked);
  showDemoBanner(demoSensors || demoEvents);
}

function dispatch(message) {
  if (Object.hasOwn(handlers, message.type)) handlers[message.type](message);
  // unknown types are for later versions of the page
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
showIncidents();
setInterval(() => incidentList.tick(), AGE_TICK_MS);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") selection.clear();
});
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
poll(`/api/v1/incidents?status=open&limit=${INCIDENT_POLL_LIMIT}`, INCIDENT_POLL_MS, {
  onData: (body, requestedAt) => openIncidents(body?.incidents, requestedAt, INCIDENT_POLL_LIMIT),
  onError: reportPollError,
});
