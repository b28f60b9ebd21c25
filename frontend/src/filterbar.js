// The filter bar (#filter-bar): the range selector (live, 15m ... 30d, custom),
// one removable chip per active filter (li.filter-chip with data-key and
// data-value) and a form to add one. It only proposes new views; main.js
// writes them to the URL and applies them.

import { byId, el } from "./dom.js";
import { printable } from "./events.js";
import { FILTERS, live, withFilter, withRange, withWindow, withoutFilter } from "./view.js";

export class FilterBar {
  /** @param {{onChange: (view: import("./view.js").View) => void}} options */
  constructor({ onChange }) {
    this.onChange = onChange;
    this.view = null;
    this.custom = byId("custom-range");
    const keys = byId("filter-key");
    for (const [key, filter] of Object.entries(FILTERS)) {
      const option = el("option", { text: filter.label });
      option.value = key;
      keys.append(option);
    }
    for (const button of byId("range-select").querySelectorAll("button.range")) {
      button.addEventListener("click", () => this.pickRange(button.dataset.range));
    }
    this.custom.addEventListener("submit", (event) => {
      event.preventDefault();
      const since = fromLocalInput(byId("range-since").value);
      const until = fromLocalInput(byId("range-until").value);
      if (since && until && since < until) this.onChange(withWindow(this.view, since, until));
    });
    byId("filter-add").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = byId("filter-value").value.trim();
      if (!value) return;
      byId("filter-value").value = "";
      this.onChange(withFilter(this.view, keys.value, value));
    });
  }

  pickRange(range) {
    if (range === "custom") {
      this.custom.hidden = !this.custom.hidden;
      return;
    }
    this.custom.hidden = true;
    this.onChange(range === "live" ? live(this.view) : withRange(this.view, range));
  }

  /** Show a view (the URL's). */
  render(view, window) {
    this.view = view;
    const active = view.range ?? (view.since || view.until ? "custom" : "live");
    for (const button of byId("range-select").querySelectorAll("button.range")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === active));
    }
    if (window) {
      byId("range-since").value = toLocalInput(window[0]);
      byId("range-until").value = toLocalInput(window[1]);
    }
    const chips = view.filters.map(([key, value]) => {
      const remove = el("button", { className: "chip-remove", text: "×", title: "remove this filter" });
      remove.type = "button";
      remove.setAttribute("aria-label", `remove ${FILTERS[key].label} ${value}`);
      remove.addEventListener("click", () => this.onChange(withoutFilter(this.view, key, value)));
      return el("li", { className: "filter-chip", dataset: { key, value }, title: `${key}=${value}` }, [
        el("span", { className: "chip-key", text: FILTERS[key].label }),
        el("span", { className: "chip-value", text: printable(value, 60) }),
        remove,
      ]);
    });
    byId("filter-chips").replaceChildren(...chips);
  }
}

/** A datetime-local input's value, read as UTC (the page speaks UTC everywhere). */
function fromLocalInput(text) {
  if (!text) return null;
  const date = new Date(`${text}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

function toLocalInput(date) {
  return date.toISOString().slice(0, 19);
}
