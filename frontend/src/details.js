// The details panel (#incident-details): one selected incident (kind, status,
// times, sensors, sources, and for an epidemic its order of spread and doubling
// time), or the profile of one of its source addresses from
// GET /api/v1/attackers/{ip}. Everything shown here is attacker-controlled or
// derived from it: text through dom.js and printable() only.

import { byId, el } from "./dom.js";
import { dateTimeUTC, printable } from "./events.js";
import { fingerprintLabel, incidentKind, listOf, sourceCount } from "./incidents.js";
import { fetchJSON } from "./poll.js";

const MAX_SOURCES = 20;
const MAX_SENSORS = 40;
const MAX_PORTS = 30;
const MAX_ROWS = 10; // per list of an attacker profile

export class DetailsPanel {
  /**
   * @param {HTMLElement} root the <section id="incident-details">
   * @param {{onClose: () => void, onActivity: () => void}} options
   *   onActivity: someone is reading (the highlight stays)
   */
  constructor(root, { onClose, onActivity }) {
    this.root = root;
    this.body = byId("incident-details-body");
    this.onActivity = onActivity;
    this.incident = null;
    this.view = null; // "incident" | "attacker"
    this.request = 0; // answers to an older request are ignored
    byId("incident-details-close").addEventListener("click", () => onClose());
  }

  get showing() {
    return this.view !== null;
  }

  hide() {
    this.request += 1;
    this.incident = null;
    this.view = null;
    this.root.hidden = true;
    this.body.replaceChildren();
  }

  /** Show an incident; `refresh` keeps an attacker profile open when its incident only grew. */
  showIncident(incident, { refresh = false } = {}) {
    this.incident = incident;
    if (refresh && this.view === "attacker") return;
    this.request += 1;
    this.view = "incident";
    this.root.hidden = false;
    this.root.dataset.view = "incident";
    this.root.style.setProperty("--kind-color", incidentKind(incident).color);
    this.body.replaceChildren(...incidentView(incident, (ip) => this.showAttacker(ip)));
  }

  async showAttacker(ip) {
    this.onActivity();
    const request = ++this.request;
    this.view = "attacker";
    this.root.dataset.view = "attacker";
    const back = this.backButton();
    this.body.replaceChildren(back, el("p", { className: "d-loading", text: `Loading ${printable(ip, 60)}…` }));
    back.focus();
    let profile;
    try {
      profile = await fetchJSON(`/api/v1/attackers/${encodeURIComponent(ip)}`);
    } catch (error) {
      if (request === this.request) {
        this.body.replaceChildren(back, el("p", { className: "d-error", text: `No profile for ${printable(ip, 60)}` }));
      }
      console.warn("honeyatlas: attacker profile:", error.message);
      return;
    }
    if (request !== this.request) return;
    this.body.replaceChildren(back, ...attackerView(profile));
  }

  backButton() {
    const back = el("button", { className: "d-back", text: "← incident" });
    back.type = "button";
    back.addEventListener("click", () => {
      this.onActivity();
      if (this.incident) this.showIncident(this.incident);
    });
    return back;
  }
}

export function incidentView(incident, openAttacker) {
  const kind = incidentKind(incident);
  const heading = el("h3", { className: "d-title" }, [
    el("span", { className: "d-kind", text: kind.label }),
    el("span", { className: `d-status d-status-${incident.status === "open" ? "open" : "closed"}`, text: incident.status }),
  ]);
  const facts = [
    ["key", el("span", { className: "d-key", text: printable(incident.key, 600) })],
    ["summary", printable(incident.summary, 300)],
    ["opened", dateTimeUTC(incident.opened_at)],
    ["last seen", dateTimeUTC(incident.last_seen)],
    ["events", incident.event_count],
  ];
  if (incident.fingerprint) facts.push(["shared", fingerprintLabel(incident.fingerprint)]);
  if (listOf(incident.ports).length) facts.push(["ports", capped(listOf(incident.ports), MAX_PORTS).join(", ")]);
  if (incident.kind === "epidemic") {
    facts.push(["doubling", Number.isFinite(incident.doubling_seconds) ? `every ${duration(incident.doubling_seconds)}` : "not yet known"]);
  }
  const parts = [heading, factList(facts)];
  parts.push(incident.kind === "epidemic" ? spreadList(incident) : sensorList(incident));
  parts.push(sourceList(incident, openAttacker));
  return parts;
}

function sensorList(incident) {
  const sensors = listOf(incident.sensors);
  return section(`Sensors (${sensors.length})`, el("ul", { className: "d-chips" },
    withMore(sensors, MAX_SENSORS, (name) => el("li", { className: "d-chip", text: printable(name, 60) }))));
}

/** Epidemic: where the sample appeared first, then each sensor it reached, with when and from how many. */
function spreadList(incident) {
  const steps = listOf(incident.timeline).length
    ? listOf(incident.timeline)
    : listOf(incident.sensors).map((sensor) => ({ sensor }));
  const first = Date.parse(steps[0]?.ts);
  const perSensor = incident.sources_per_sensor && typeof incident.sources_per_sensor === "object"
    ? incident.sources_per_sensor
    : {};
  const rows = withMore(steps, MAX_SENSORS, (step, index) => {
    const at = Date.parse(step.ts);
    const when = index === 0 || Number.isNaN(at) || Number.isNaN(first)
      ? dateTimeUTC(step.ts)
      : `+${duration((at - first) / 1000)}`;
    const sources = Number.isFinite(perSensor[step.sensor]) ? ` · ${perSensor[step.sensor]} src` : "";
    return el("li", {}, [
      el("span", { className: "d-order", text: String(index + 1) }),
      el("span", { className: "d-name", text: printable(step.sensor, 60) }),
      el("span", { className: "d-when", text: `${when}${sources}` }),
    ]);
  });
  return section(`Order of spread (${listOf(incident.sensors).length} sensors)`, el("ol", { className: "d-spread" }, rows));
}

function sourceList(incident, openAttacker) {
  const sources = listOf(incident.sources);
  const total = Math.max(sourceCount(incident), sources.length);
  const items = sources.slice(0, MAX_SOURCES).map((ip) => {
    const button = el("button", { className: "d-source", text: printable(ip, 60), title: "attacker profile" });
    button.type = "button";
    button.addEventListener("click", () => openAttacker(String(ip)));
    return el("li", {}, [button]);
  });
  if (total > items.length) items.push(el("li", { className: "d-more", text: `and ${total - items.length} more` }));
  return section(`Sources (${total})`, el("ul", { className: "d-chips" }, items));
}

export function attackerView(profile) {
  const where = [profile.country, profile.city, profile.asn ? `AS${profile.asn}` : null, profile.org]
    .filter((part) => part !== null && part !== undefined && part !== "")
    .map((part) => printable(part, 80))
    .join(" · ");
  const roles = el("ul", { className: "d-roles" },
    listOf(profile.classification).map((role) => el("li", { text: printable(String(role).replace("_", " "), 40) })));
  const sensors = listOf(profile.sensors);
  const facts = [
    ["where", where || "unknown"],
    ["first seen", dateTimeUTC(profile.first_seen)],
    ["last seen", dateTimeUTC(profile.last_seen)],
    ["events", profile.event_count],
    ["sensors", `${profile.sensor_count ?? sensors.length}: ${capped(sensors, MAX_SENSORS).map((s) => printable(s, 40)).join(", ")}`],
    ["incidents", listOf(profile.incidents).length],
  ];
  return [
    el("h3", { className: "d-title" }, [el("span", { className: "d-ip", text: printable(profile.ip, 60) }), roles]),
    factList(facts),
    section("Top ports", countList(profile.ports, (value) => String(value))),
    section("Credentials", credentialList(profile.credentials)),
    section("Commands", countList(profile.commands, (value) => printable(value, 200))),
  ];
}

export function countList(rows, textOf) {
  const items = listOf(rows).slice(0, MAX_ROWS).map((row) =>
    el("li", {}, [
      el("span", { className: "d-value", text: textOf(row?.value), title: printable(row?.value, 512) }),
      el("span", { className: "d-count", text: `×${row?.count ?? 0}` }),
    ]));
  return items.length ? el("ul", { className: "d-rows" }, items) : el("p", { className: "d-none", text: "none" });
}

function credentialList(rows) {
  const items = listOf(rows).slice(0, MAX_ROWS).map((row) => {
    const text = `${printable(row?.username ?? "", 60)} / ${printable(row?.password ?? "", 60)}`;
    return el("li", { className: row?.succeeded ? "d-success" : "" }, [
      el("span", { className: "d-value", text, title: text }),
      el("span", { className: "d-count", text: `×${row?.attempts ?? 0}${row?.succeeded ? " ✓" : ""}` }),
    ]);
  });
  return items.length ? el("ul", { className: "d-rows" }, items) : el("p", { className: "d-none", text: "none" });
}

export function factList(facts) {
  const list = el("dl", { className: "d-facts" });
  for (const [name, value] of facts) {
    list.append(el("dt", { text: name }), value instanceof Node ? el("dd", {}, [value]) : el("dd", { text: value ?? "–" }));
  }
  return list;
}

export function section(title, content) {
  return el("section", { className: "d-section" }, [el("h4", { text: title }), content]);
}

export function withMore(values, max, build) {
  const items = values.slice(0, max).map(build);
  if (values.length > max) items.push(el("li", { className: "d-more", text: `and ${values.length - max} more` }));
  return items;
}

function capped(values, max) {
  return values.length > max ? [...values.slice(0, max), `… ${values.length - max} more`] : values;
}

/** Exact enough for a doubling time: "40 s", "3.5 min", "2.1 h", "1.5 d". */
function duration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}
