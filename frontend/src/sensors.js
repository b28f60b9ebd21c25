// Sensors from GET /api/v1/sensors: their places and markers for the map, and
// the #sensor-health section (counts per status, the sensors that stopped
// sending or never sent). A sensor that goes silent must be seen from across
// the room, on the map and in the panel.

import { byId, el } from "./dom.js";
import { lonLat, shortDuration } from "./events.js";

/** Status -> how the panel names it; the order is the order of the counts. */
export const SENSOR_STATUSES = {
  active: "active",
  silent: "silent",
  never_seen: "never seen",
  revoked: "revoked",
};
const MAX_LISTED = 6;

export function statusOf(sensor) {
  return Object.hasOwn(SENSOR_STATUSES, sensor?.status) ? sensor.status : "active";
}

/** The sensors of a /api/v1/sensors body, revoked ones included. */
export function sensorsOf(body) {
  return (Array.isArray(body?.sensors) ? body.sensors : []).filter(
    (sensor) => sensor && typeof sensor === "object" && typeof sensor.name === "string",
  );
}

/** Map markers: every located sensor that is not revoked, with its status. */
export function sensorMarkers(sensors) {
  const markers = [];
  for (const sensor of sensors) {
    const point = lonLat(sensor);
    const status = statusOf(sensor);
    if (!point || status === "revoked") continue;
    markers.push({ lon: point[0], lat: point[1], name: sensor.name, label: String(sensor.label || sensor.name), status });
  }
  return markers;
}

/** Fill #sensor-health: counts per status, then the silent and never-seen sensors by name. */
export function showSensorHealth(sensors, nowMs) {
  const counts = Object.fromEntries(Object.keys(SENSOR_STATUSES).map((status) => [status, 0]));
  for (const sensor of sensors) counts[statusOf(sensor)] += 1;
  const countItems = Object.entries(SENSOR_STATUSES)
    .filter(([status]) => status !== "revoked" || counts.revoked > 0)
    .map(([status, name]) =>
      el("li", { className: "sensor-count", dataset: { status, count: counts[status] } }, [
        el("span", { className: "sc-value", text: counts[status] }),
        el("span", { className: "sc-label", text: name }),
      ]),
    );
  byId("sensor-counts").replaceChildren(...countItems);

  // silent first (it used to send: something broke), longest silent first; then never seen
  const quiet = sensors
    .filter((sensor) => statusOf(sensor) === "silent" || statusOf(sensor) === "never_seen")
    .sort((a, b) => rank(a) - rank(b) || lastSeen(a) - lastSeen(b) || (a.name < b.name ? -1 : 1));
  const items = quiet.slice(0, MAX_LISTED).map((sensor) => {
    const status = statusOf(sensor);
    const since = status === "silent" ? `silent ${shortDuration((nowMs - lastSeen(sensor)) / 1000)}` : "never seen";
    return el("li", { className: "sensor-silent", dataset: { status, name: sensor.name } }, [
      el("span", { className: "ss-name", text: sensor.label || sensor.name, title: sensor.name }),
      el("span", { className: "ss-status", text: since }),
    ]);
  });
  if (quiet.length > MAX_LISTED) items.push(el("li", { className: "sensor-more", text: `and ${quiet.length - MAX_LISTED} more` }));
  byId("silent-sensors").replaceChildren(...items);
  byId("sensor-health").dataset.quiet = String(quiet.length);
}

function rank(sensor) {
  return statusOf(sensor) === "silent" ? 0 : 1;
}

function lastSeen(sensor) {
  const ms = Date.parse(sensor.last_seen);
  return Number.isNaN(ms) ? 0 : ms;
}
