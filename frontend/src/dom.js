// DOM helpers. Every string reaches the page through textContent or a DOM
// property, never through HTML parsing: event fields are attacker-controlled.

/** Create an element; `text` becomes its textContent, `props` DOM properties. */
export function el(tag, { className, text, title, dataset } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (title) node.title = String(title);
  if (dataset) {
    for (const [key, value] of Object.entries(dataset)) node.dataset[key] = String(value);
  }
  for (const child of children) node.append(child);
  return node;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`honeyatlas: missing #${id} in index.html`);
  return node;
}
