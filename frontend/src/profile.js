// The shareable pages of one attacker (/attackers/{ip}), one incident
// (/incidents/{id}) and one payload (/malware/{sha256}): the profiles
// GET /api/v1/attackers/{ip}, /api/v1/incidents/{id} and /api/v1/malware/{sha256}
// serve, in #profile (data-kind attacker|incident|malware, data-state
// loading|shown|missing), with links to the map filtered to them. Text only.

import { attackerView, countList, factList, incidentView, section, withMore } from "./details.js";
import { byId, el } from "./dom.js";
import { dateTimeUTC, printable } from "./events.js";
import { fetchJSON } from "./poll.js";
import { profileLink } from "./table.js";

const PAGES = [
  { kind: "attacker", pattern: /^\/attackers\/([^/]+)$/, api: "/api/v1/attackers/" },
  { kind: "incident", pattern: /^\/incidents\/([^/]+)$/, api: "/api/v1/incidents/" },
  { kind: "malware", pattern: /^\/malware\/([^/]+)$/, api: "/api/v1/malware/" },
];

/** The profile page a path names, or null for the map. */
export function profileRoute(pathname) {
  for (const page of PAGES) {
    const match = pathname.match(page.pattern);
    if (match) {
      try {
        return { ...page, id: decodeURIComponent(match[1]) };
      } catch {
        return null; // a malformed escape: not a page of ours
      }
    }
  }
  return null;
}

export async function showProfile(route) {
  const root = byId("profile");
  const body = byId("profile-body");
  root.hidden = false;
  root.dataset.kind = route.kind;
  root.dataset.state = "loading";
  document.title = `honeyatlas: ${route.kind} ${printable(route.id, 80)}`;
  body.replaceChildren(el("p", { className: "d-loading", text: `Loading ${printable(route.id, 80)}…` }));
  let profile;
  try {
    profile = await fetchJSON(`${route.api}${encodeURIComponent(route.id)}`);
  } catch (error) {
    root.dataset.state = "missing";
    body.replaceChildren(el("p", { className: "d-error", text: `No ${route.kind} ${printable(route.id, 80)} (${error.message})` }));
    return;
  }
  const parts = VIEWS[route.kind](profile);
  body.replaceChildren(...parts);
  root.dataset.state = "shown";
}

const VIEWS = {
  attacker: (profile) => [
    ...attackerView(profile),
    section("URLs", countList(profile.urls, (value) => printable(value, 300))),
    section("Payloads", payloadList(profile.sha256)),
    section("Incidents", incidentList(profile.incidents)),
    mapLinks([["src_ip", profile.ip]]),
  ],
  incident: (incident) => [
    ...incidentView(incident, (ip) => window.location.assign(`/attackers/${encodeURIComponent(ip)}`)),
    mapLinks((incident.sources ?? []).slice(0, 20).map((ip) => ["src_ip", ip])),
  ],
  malware: (profile) => [
    el("h3", { className: "d-title" }, [el("span", { className: "d-ip", text: printable(profile.sha256, 64) })]),
    factList([
      ["md5", (profile.md5 ?? []).map((md5) => printable(md5, 32)).join(", ") || "–"],
      ["first seen", dateTimeUTC(profile.first_seen)],
      ["last seen", dateTimeUTC(profile.last_seen)],
      ["events", profile.event_count],
      ["sources", profile.source_count],
      ["doubling", Number.isFinite(profile.doubling_seconds) ? `${Math.round(profile.doubling_seconds)} s` : "–"],
    ]),
    section("Spread", el("ol", { className: "d-spread" }, withMore(profile.sightings ?? [], 40, (sighting, index) =>
      el("li", {}, [
        el("span", { className: "d-order", text: String(index + 1) }),
        el("span", { className: "d-name", text: printable(sighting.sensor, 60) }),
        el("span", { className: "d-when", text: `${dateTimeUTC(sighting.first_seen)} · ${sighting.sources} src · ${sighting.events} ev` }),
      ])))),
    section("Sources", sourceLinks(profile.sources)),
    section("URLs", countList(profile.urls, (value) => printable(value, 300))),
    section("Incidents", incidentList(profile.incidents)),
  ],
};

function sourceLinks(rows) {
  const items = (rows ?? []).slice(0, 40).map((row) =>
    el("li", {}, [profileLink(`/attackers/${encodeURIComponent(String(row.value))}`, printable(row.value, 60)),
      el("span", { className: "d-count", text: ` ×${row.count}` })]));
  return items.length ? el("ul", { className: "d-chips" }, items) : el("p", { className: "d-none", text: "none" });
}

function payloadList(rows) {
  const items = (rows ?? []).slice(0, 20).map((row) =>
    el("li", {}, [profileLink(`/malware/${encodeURIComponent(String(row.value))}`, printable(row.value, 64)),
      el("span", { className: "d-count", text: ` ×${row.count}` })]));
  return items.length ? el("ul", { className: "d-rows" }, items) : el("p", { className: "d-none", text: "none" });
}

function incidentList(refs) {
  const items = (refs ?? []).slice(0, 40).map((ref) =>
    el("li", {}, [profileLink(`/incidents/${encodeURIComponent(ref.id)}`, `${printable(ref.kind, 30)} · ${printable(ref.status, 10)} · ${dateTimeUTC(ref.opened_at)}`)]));
  return items.length ? el("ul", { className: "d-rows" }, items) : el("p", { className: "d-none", text: "none" });
}

function mapLinks(filters) {
  if (!filters.length) return el("p");
  const params = new URLSearchParams([["range", "7d"], ...filters.map(([key, value]) => [key, String(value)])]);
  return el("p", {}, [profileLink(`/?${params}`, "these events on the map (last 7 days)")]);
}
