// Composition root of the page. It asks who is looking (GET /api/v1/session)
// and builds the page for that audience: the login form only; the public map
// (summary and live stream only, redacted by the server); or the analyst's map
// with filters, history, timeline, events table and replay; or, on
// /attackers/{ip}, /incidents/{id} and /malware/{sha256}, a profile page. The
// view (window and filters) is the URL: every change goes through setView().
// The counters in window.__honeyatlas are part of the test contract.

import { ArcLayer } from "./arcs.js";
import { DetailsPanel } from "./details.js";
import { byId } from "./dom.js";
import { isDemo, kindColor, lonLat } from "./events.js";
import { FilterBar } from "./filterbar.js";
import { FlowLayer, RateMeter } from "./flows.js";
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
import { fetchJSON, onUnauthorized, poll, pollWith } from "./poll.js";
import { profileRoute, showProfile } from "./profile.js";
import { Replay } from "./replay.js";
import { Selection } from "./selection.js";
import { sensorMarkers, sensorsOf, showSensorHealth } from "./sensors.js";
import { LoginForm, loadSession, logout } from "./session.js";
import { EventsTable } from "./table.js";
import { Timeline, bucketSeconds } from "./timeline.js";
import { apiParams, isHistory, matcher, parseView, viewSearch, windowOf, withFilter, withWindow } from "./view.js";

const POLL_MS = 5000;
const TIMELINE_POLL_MS = 60000;
const INCIDENT_POLL_MS = 15000; // a fallback: the live stream pushes every change
const INCIDENT_POLL_LIMIT = 200; // as many as a snapshot lists
const AGE_TICK_MS = 5000;
const SEEN_IDS_MAX = 2000; // enough to recognise a snapshot re-sent after a reconnect
const BATCH_SPREAD_MS = 1000; // arcs of one batch start spread over this time
const SNAPSHOT_SPREAD_MS = 2500;
const SUMMARY_TOP = 100; // the choropleth colours every country the summary lists
const LIVE_TIMELINE_HOURS = 24;
const PUBLIC_SENSORS_MAX = 300;

const stats = {
  arcsDrawn: 0,
  eventsSeen: 0,
  arcsSkipped: 0,
  pulsesSkipped: 0,
  mapReady: false,
  incidentsShown: 0,
  highlighted: null,
  highlightArcs: 0,
  audience: null, // "analyst" | "public" | "none", once the session is known
  liveShown: 0, // live events that passed the view's filters
  flowsDrawn: 0, // events drawn as flows instead of arcs
  flowing: false,
  replay: { playing: false, done: false, count: 0 },
  historyTotal: null, // the total of the window's summary, in history mode
  viewLoads: 0, // views applied (the first one included)
};
window.__honeyatlas = stats;

boot().catch((error) => {
  console.error("honeyatlas:", error);
  byId("conn-status").textContent = "server unreachable";
});

async function boot() {
  const session = await loadSession();
  stats.audience = session.audience;
  document.body.dataset.audience = session.audience;
  const login = new LoginForm({ cancellable: session.audience === "public" });
  showAccount(session, login);
  onUnauthorized(() => {
    // the public audience is not logged in: a 401 there only means "not for the public"
    if (session.audience !== "public") login.show("Your session has ended: log in again.");
  });
  if (session.audience === "none") {
    login.show();
    return;
  }
  const route = profileRoute(window.location.pathname);
  if (route) {
    document.body.dataset.page = "profile";
    if (session.audience === "public") login.show("Profiles are for analysts: log in to see them.");
    else await showProfile(route);
    return;
  }
  startMap(session.audience);
}

function showAccount(session, login) {
  byId("user-name").textContent = session.user ? `${session.user} (${session.role ?? "?"})` : "";
  byId("login-open").hidden = session.audience !== "public";
  byId("logout").hidden = !(session.user && session.via === "session");
  byId("login-open").addEventListener("click", () => login.show());
  byId("logout").addEventListener("click", () => logout());
}

function startMap(audience) {
  const analyst = audience === "analyst";
  const arcs = new ArcLayer(stats);
  const flows = new FlowLayer();
  const rate = new RateMeter();
  const highlight = new HighlightLayer(stats, () => selection.expired());
  const map = new WorldMap(byId("map"), arcs, highlight, panelInsets, {
    flows,
    onCountry: (code) => setView(withFilter(view, "country", code)),
    onSensor: (name) => setView(withFilter(view, "sensor", name)),
    onSource: (address) => setView(withFilter(view, "src_ip", address)),
  });
  const ticker = new Ticker(byId("ticker"));
  const dropped = new DroppedCounter(byId("dropped"));
  const seenIds = new Set();
  const sensorsByName = new Map();
  const publicSensors = new Map(); // public view: sensors known from events' dst_geo (alias or country)
  const locator = new SourceLocator();
  const book = new IncidentBook();
  const incidentList = new IncidentList(byId("incidents"), byId("incident-count"), {
    // an incident of a past window may be closed and unknown here: its own page shows it
    onSelect: (id) => (book.get(id) ? selection.toggle(id) : window.location.assign(`/incidents/${encodeURIComponent(id)}`)),
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
  stats.screenPoint = (lon, lat) => map.projection([lon, lat]); // where a place is drawn, for tests
  stats.landBounds = () => map.landBounds(); // where the land is drawn, for tests
  stats.sensorLabels = () => map.labelBoxes.map((box) => ({ ...box })); // the labels of the last frame
  const filterBar = new FilterBar({ onChange: setView });
  const table = new EventsTable({ onFilter: addFilter });
  const timeline = new Timeline(byId("timeline"), { onSelect: (since, until) => setView(withWindow(view, since, until)) });
  const replay = new Replay({
    onEvents: (events) => drawEvents(events, 0),
    onState: showReplay,
    wake: () => map.wake(),
  });
  map.addTicker((now) => replay.tick(now));

  let view = parseView(window.location.search);
  let liveMatches = matcher(view);
  let historyRequest = 0;
  let demoEvents = false; // sticky: one demo event marks this screen as demo
  let clockSkewMs = 0; // server clock minus this one, for the ages of incidents
  let lastSummary = null;
  let windowIncidents = null; // history mode: the incidents active in the window, else null (the open ones)
  let summaryPoll = null; // the pollers start after the first view is applied
  let timelinePoll = null;

  /** The view names a window and this page shows windows (an analyst's, not a wall's). */
  function historyMode() {
    return analyst && !view.kiosk && isHistory(view);
  }

  function serverNow() {
    return Date.now() + clockSkewMs;
  }

  function syncClock(serverTime) {
    const server = Date.parse(serverTime);
    if (!Number.isNaN(server)) clockSkewMs = server - Date.now();
  }

  /** Canvas area hidden by the panels and bars, so the map is fitted to the rest. */
  function panelInsets() {
    const width = window.innerWidth;
    const height = window.innerHeight;
    const edge = (id, side) => {
      const box = byId(id).getBoundingClientRect(); // all zeros when hidden
      return box.width > 0 && box.height > 0 ? box[side] : null;
    };
    const left = edge("side-left", "right") ?? 0;
    const right = edge("side-right", "left");
    const top = Math.max(edge("topbar", "bottom") ?? 0, edge("filter-bar", "bottom") ?? 0);
    const timelineTop = edge("timeline-panel", "top");
    return {
      left,
      right: right === null ? 0 : width - right,
      top,
      bottom: timelineTop === null ? 34 : height - timelineTop,
    };
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

  /** Public view: the sensors are what the events say they are (an alias or a country at its centroid). */
  function learnPublicSensor(event) {
    const point = lonLat(event.dst_geo);
    const name = typeof event.sensor === "string" ? event.sensor : null;
    if (!point || !name || publicSensors.has(name)) return;
    if (publicSensors.size >= PUBLIC_SENSORS_MAX) publicSensors.delete(publicSensors.keys().next().value);
    publicSensors.set(name, { lon: point[0], lat: point[1], name, label: name, status: "active" });
    map.setSensors([...publicSensors.values()]);
  }

  /** Live events: the filter of the view, then the ticker and the map (not in history mode). */
  function ingest(events, spreadMs) {
    if (!Array.isArray(events)) return;
    const fresh = events.filter((event) => event && typeof event === "object" && firstSighting(event));
    stats.eventsSeen += fresh.length;
    for (const event of fresh) {
      locator.remember(event);
      if (!analyst) learnPublicSensor(event);
      if (!demoEvents && isDemo(event)) {
        demoEvents = true;
        showDemoBanner(true);
      }
    }
    if (historyMode()) return; // the map belongs to the window (and its replay)
    const shown = fresh.filter(liveMatches);
    stats.liveShown += shown.length;
    ticker.addAll(shown);
    drawEvents(shown, spreadMs);
  }

  /** Arcs, or flows when the rate makes single arcs noise; live and replay alike. */
  function drawEvents(events, spreadMs) {
    const now = performance.now();
    rate.add(events.length, now);
    const flowing = rate.update(now);
    showFlows(flowing, now);
    const step = events.length > 1 ? spreadMs / events.length : 0;
    events.forEach((event, index) => {
      const to = sensorPoint(event);
      if (!to) return;
      const from = lonLat(event.src_geo);
      const color = kindColor(event);
      if (flowing && from) {
        const country = event.src_geo?.country;
        const origin = (country && map.centroidOf(country)) || from;
        flows.add(`${country ?? from.join(",")}>${to.join(",")}`, origin, to, color, now);
        stats.flowsDrawn += 1;
      } else if (from) arcs.addArc(from, to, color, now + index * step, typeof event.src_ip === "string" ? event.src_ip : null);
      else arcs.addPulse(to, color, now + index * step); // loopback/private source: no arc
    });
    map.wake();
  }

  function showFlows(flowing, now = performance.now()) {
    stats.flowing = flowing;
    const status = byId("flow-status");
    status.hidden = !flowing;
    if (flowing) status.textContent = `${Math.round(rate.rate(now)).toLocaleString("en-US")} events/s, drawing flows`;
  }

  function showIncidents() {
    if (windowIncidents) incidentList.render(windowIncidents, windowIncidents.length, selection.id, "in window");
    else incidentList.render(book.newest(incidentList.maxItems), book.size, selection.id);
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

  function addFilter(key, value) {
    setView(withFilter(view, key, value));
  }

  /** The summary: counters and top lists, and the choropleth when it is on. */
  function summaryShown(summary) {
    lastSummary = summary;
    showSummary(summary, addFilter);
    showChoropleth();
  }

  /**
   * The live summary. Unfiltered: the server's own (counts for 1 m / 1 h / 24 h, top of
   * 24 h). Filtered: a filtered summary is one window's total, so the three counters are
   * three windows ending now, the top lists those of the 24 hours.
   */
  async function liveSummary() {
    if (!analyst || view.filters.length === 0) return fetchJSON(`/api/v1/stats/summary?top=${SUMMARY_TOP}`);
    const now = Date.now();
    const last = (seconds, top) => {
      const query = apiParams(view, [new Date(now - seconds * 1000), new Date(now)]);
      query.set("top", String(top));
      return fetchJSON(`/api/v1/stats/summary?${query}`);
    };
    const [minute, hour, day] = await Promise.all([last(60, 1), last(3600, 1), last(86400, SUMMARY_TOP)]);
    return { ...day, counts: { "1m": minute.total, "1h": hour.total, "24h": day.total } };
  }

  function showChoropleth() {
    const rows = lastSummary?.top?.countries;
    map.setChoropleth(view.choropleth && Array.isArray(rows) ? new Map(rows.map((row) => [row.key, row.count])) : null);
    byId("choropleth-toggle").setAttribute("aria-pressed", String(view.choropleth));
  }

  /** A new view: into the URL (a history entry), then onto the page. */
  function setView(next) {
    const search = viewSearch(next);
    if (search !== window.location.search) {
      window.history.pushState(null, "", `${window.location.pathname}${search}`);
    }
    applyView(next);
  }

  function applyView(next) {
    view = next;
    stats.viewLoads += 1;
    liveMatches = matcher(view);
    document.body.classList.toggle("kiosk", view.kiosk);
    const history = historyMode();
    document.body.dataset.mode = history ? "history" : "live";
    const span = history ? windowOf(view) : null;
    filterBar.render(view, span);
    ticker.list.replaceChildren();
    arcs.clear();
    flows.clear();
    if (history) loadHistory(span);
    else {
      stats.historyTotal = null;
      windowIncidents = null;
      showIncidents();
      table.clear();
      replay.reset(null, null);
      timeline.setMarker(null);
      summaryPoll?.now();
      timelinePoll?.now();
    }
    map.resize(); // the bars may have changed height
  }

  async function loadHistory(span) {
    const request = ++historyRequest;
    const params = apiParams(view, span);
    stats.historyTotal = null;
    byId("window-label").textContent = windowLabel(span);
    table.load(params);
    replay.load(apiParams(view), span);
    const summaryQuery = new URLSearchParams(params);
    summaryQuery.set("top", String(SUMMARY_TOP));
    const histogramQuery = new URLSearchParams(params);
    histogramQuery.set("bucket_seconds", String(bucketSeconds(span[0], span[1])));
    histogramQuery.set("by_kind", "true");
    const [summary, histogram, incidents] = await Promise.allSettled([
      fetchJSON(`/api/v1/stats/summary?${summaryQuery}`),
      fetchJSON(`/api/v1/stats/histogram?${histogramQuery}`),
      fetchJSON(`/api/v1/incidents?${incidentQuery(span)}`),
    ]);
    if (request !== historyRequest) return;
    if (incidents.status === "fulfilled") {
      windowIncidents = Array.isArray(incidents.value?.incidents) ? incidents.value.incidents : [];
      showIncidents();
    } else reportPollError(incidents.reason);
    if (summary.status === "fulfilled") {
      summaryShown(summary.value);
      stats.historyTotal = Number.isFinite(summary.value?.total) ? summary.value.total : null;
    } else reportPollError(summary.reason);
    if (histogram.status === "fulfilled") timeline.show(histogram.value);
    else reportPollError(histogram.reason);
  }

  /**
   * The incidents of a window: those active in it, of the view's sensors and sources.
   * The other filters describe events (the incidents route reads `kind` as the incident's).
   */
  function incidentQuery(span) {
    const query = new URLSearchParams({ since: span[0].toISOString(), until: span[1].toISOString() });
    for (const [key, value] of view.filters) if (key === "sensor" || key === "src_ip") query.append(key, value);
    query.set("limit", String(incidentList.maxItems));
    return query;
  }

  function showReplay(state) {
    stats.replay = { playing: state.playing, done: state.done, count: state.count };
    document.body.classList.toggle("replaying", state.playing || state.count > 0);
    byId("replay-count").textContent = String(state.count);
    byId("replay-play").textContent = state.playing ? "pause" : "play";
    byId("replay-play").setAttribute("aria-pressed", String(state.playing));
    const position = byId("replay-position");
    if (document.activeElement !== position) position.value = String(Math.round(state.fraction * 1000));
    byId("replay-clock").textContent = state.position ? `${new Date(state.position).toISOString().slice(0, 19).replace("T", " ")} UTC` : "";
    if (state.position) timeline.setMarker(state.position);
  }

  // --- wiring ---
  buildLegend(byId("legend"), addFilter);
  showIncidents();
  setInterval(() => incidentList.tick(), AGE_TICK_MS);
  setInterval(() => showFlows(rate.update()), 1000);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    selection.clear();
    table.details.hide();
  });
  window.addEventListener("resize", () => {
    map.resize();
    timeline.draw();
  });
  window.addEventListener("popstate", () => applyView(parseView(window.location.search)));
  for (const button of document.querySelectorAll("button.stat[data-range]")) {
    button.addEventListener("click", () => filterBar.pickRange(button.dataset.range));
  }
  byId("choropleth-toggle").addEventListener("click", () => {
    view = { ...view, choropleth: !view.choropleth };
    window.history.replaceState(null, "", `${window.location.pathname}${viewSearch(view)}`);
    showChoropleth();
  });
  byId("theme-toggle").addEventListener("click", () => {
    const light = document.documentElement.dataset.theme !== "light";
    document.documentElement.dataset.theme = light ? "light" : "dark";
    byId("theme-toggle").setAttribute("aria-pressed", String(light));
    map.setTheme(light ? "light" : "dark");
    timeline.draw();
  });
  byId("replay-play").addEventListener("click", () => (replay.playing ? replay.pause() : replay.play()));
  byId("replay-step").addEventListener("click", () => replay.step());
  byId("replay-speed").addEventListener("change", (event) => replay.setSpeed(Number(event.target.value)));
  byId("replay-position").addEventListener("change", (event) => replay.seek(Number(event.target.value) / 1000));
  replay.setSpeed(Number(byId("replay-speed").value));

  watchPixelRatio();
  map
    .load("/static/countries-110m.json")
    .then(() => {
      stats.mapReady = true; // the countries are drawn
    })
    .catch((error) => console.error("honeyatlas: map", error));

  applyView(view);
  new LiveStream(liveURL(), { onMessage: dispatch, onState: showConnection }).start();
  summaryPoll = pollWith(liveSummary, POLL_MS, {
    onData: (body) => (historyMode() ? null : summaryShown(body)),
    onError: reportPollError,
  });
  if (analyst) {
    poll("/api/v1/sensors", POLL_MS, { onData: showSensors, onError: reportPollError });
    poll(`/api/v1/incidents?status=open&limit=${INCIDENT_POLL_LIMIT}`, INCIDENT_POLL_MS, {
      onData: (body, requestedAt) => openIncidents(body?.incidents, requestedAt, INCIDENT_POLL_LIMIT),
      onError: reportPollError,
    });
    if (!view.kiosk) {
      timelinePoll = poll(
        () => {
          const until = new Date();
          const since = new Date(until.getTime() - LIVE_TIMELINE_HOURS * 3600 * 1000);
          const query = apiParams(view, [since, until]);
          query.set("bucket_seconds", String(bucketSeconds(since, until)));
          query.set("by_kind", "true");
          return `/api/v1/stats/histogram?${query}`;
        },
        TIMELINE_POLL_MS,
        { onData: (body) => (historyMode() ? null : timeline.show(body)), onError: reportPollError },
      );
    }
  }
}

function windowLabel([since, until]) {
  const text = (date) => date.toISOString().slice(0, 16).replace("T", " ");
  return `${text(since)} – ${text(until)} UTC`;
}
