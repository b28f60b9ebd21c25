// The event vocabulary of the server contract: kinds and their colours, and the
// few readings of an Event the panels and the map share. No DOM, no I/O.

/** Kind -> arc/ticker colour. Unknown kinds fall back to `other`. */
export const KIND_COLORS = {
  connection: "#5fa8ff",
  scan: "#7b8cff",
  login_attempt: "#ffb020",
  command: "#ff5a5f",
  file_download: "#ff3df2",
  file_upload: "#c56bff",
  web_request: "#3ee0c5",
  exploit: "#ff2d2d",
  ids_alert: "#ffe14d",
  other: "#9aa7b8",
};

export function kindOf(event) {
  return Object.hasOwn(KIND_COLORS, event.kind) ? event.kind : "other";
}

export function kindColor(event) {
  return KIND_COLORS[kindOf(event)];
}

/** [lon, lat] of a Geo object, or null when it has no usable coordinates. */
export function lonLat(geo) {
  if (!geo || typeof geo !== "object") return null;
  const { lat, lon } = geo;
  if (!Number.isFinite(lat) || !Number.isFinite(lon)) return null;
  if (Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  return [lon, lat];
}

export function isDemo(event) {
  return Array.isArray(event.flags) && event.flags.includes("demo");
}

/** HH:MM:SS in UTC, or "--:--:--" for a missing or unreadable timestamp. */
export function clockUTC(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "--:--:--";
  return date.toISOString().slice(11, 19);
}

const MAX_DETAIL = 160;

/** The one line of attacker detail worth showing for this event, as plain text. */
export function detailOf(event) {
  let detail;
  switch (event.kind) {
    case "login_attempt":
      detail = `${event.username ?? ""} / ${event.password ?? ""}`;
      break;
    case "command":
      detail = event.command;
      break;
    case "web_request":
      detail = event.url;
      break;
    case "exploit":
    case "ids_alert":
      detail = event.signature ?? event.url;
      break;
    case "file_download":
    case "file_upload":
      detail = event.url ?? (event.sha256 ? `sha256 ${event.sha256.slice(0, 16)}…` : undefined);
      break;
    default:
      detail = event.signature ?? event.url ?? event.command;
  }
  if (detail === undefined || detail === null || detail === "") {
    detail = event.dst_port !== undefined ? `port ${event.dst_port}` : (event.action ?? "");
  }
  return printable(detail, MAX_DETAIL);
}

/**
 * Attacker text made safe to look at: control characters (newlines in commands,
 * terminal escapes) shown as \xNN, cut to `max` characters with an ellipsis.
 */
export function printable(text, max = MAX_DETAIL) {
  const shown = String(text ?? "").replace(
    /[\u0000-\u001f\u007f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
  return shown.length > max ? `${shown.slice(0, max)}…` : shown;
}

/** "YYYY-MM-DD HH:MM:SS UTC", or "–" for a missing or unreadable timestamp. */
export function dateTimeUTC(iso) {
  const date = new Date(iso);
  if (iso === undefined || iso === null || Number.isNaN(date.getTime())) return "–";
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** A duration as a wall display reads it: "45 s", "12 min", "3 h", "2 d". */
export function shortDuration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  const s = Math.max(0, seconds);
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}
