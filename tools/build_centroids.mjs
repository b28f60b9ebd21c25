// Rebuild src/honeyatlas/enrichment/data/country_centroids.json: one representative point
// per ISO 3166-1 alpha-2 code, used to place an address the country database locates only
// to a country. A maintainer tool, not run at install:
//
//     cd tools && npm ci && node build_centroids.mjs
//
// Source: world-atlas (Natural Earth admin-0 countries, public domain; feature ids are
// ISO 3166-1 numeric), names and numeric -> alpha-2 from i18n-iso-countries.
//
// The point is the spherical centroid of a country's LARGEST polygon, so that overseas
// territories drawn inside a parent's MultiPolygon (France, Norway, the Netherlands...)
// do not drag the mainland's point into an ocean. Output: {"FR": [lat, lon, "France"], ...}
// sorted by code, rounded to 2 decimals, one entry per line.

import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { geoArea, geoCentroid } from "d3-geo";
import { feature } from "topojson-client";

const require = createRequire(import.meta.url);
const isoCountries = require("i18n-iso-countries");

const here = dirname(fileURLToPath(import.meta.url));
const output = join(here, "..", "src", "honeyatlas", "enrichment", "data", "country_centroids.json");

// Natural Earth features that carry no ISO numeric id but map to a code the country
// database returns.
const UNNUMBERED = { Kosovo: "XK" };

// Territories with their own ISO code that Natural Earth draws as part of another
// feature: the parent (numeric id or feature name) and a coarse [west, south, east, north]
// box around the territory. The largest parent polygon whose centroid lies in the box wins.
const PARTS = {
  BQ: ["528", [-69.0, 11.8, -62.5, 18.0]], // Bonaire, Sint Eustatius, Saba: the Netherlands
  BV: ["578", [3.0, -55.0, 4.0, -54.0]], // Bouvet Island: Norway
  CC: ["Indian Ocean Ter.", [96.0, -12.5, 97.5, -11.5]], // Cocos (Keeling) Islands
  CX: ["Indian Ocean Ter.", [105.0, -11.0, 106.0, -10.0]], // Christmas Island
  GF: ["250", [-55.0, 2.0, -51.0, 6.0]], // French Guiana: France
  GP: ["250", [-62.0, 15.8, -60.9, 16.6]], // Guadeloupe: France
  MQ: ["250", [-61.3, 14.3, -60.8, 14.9]], // Martinique: France
  RE: ["250", [55.0, -21.5, 56.0, -20.8]], // Réunion: France
  SJ: ["578", [10.0, 74.0, 35.0, 81.0]], // Svalbard (and Jan Mayen): Norway
  TK: ["554", [-173.0, -10.0, -171.0, -8.0]], // Tokelau: New Zealand
  YT: ["250", [44.9, -13.1, 45.4, -12.5]], // Mayotte: France
};

function loadFeatures(resolution) {
  const path = require.resolve(`world-atlas/countries-${resolution}.json`);
  const topology = JSON.parse(readFileSync(path, "utf8"));
  return feature(topology, topology.objects.countries).features;
}

function polygons(geometry) {
  const rings = geometry.type === "MultiPolygon" ? geometry.coordinates : [geometry.coordinates];
  return rings.map((coordinates) => {
    const polygon = { type: "Polygon", coordinates };
    return { area: geoArea(polygon), centroid: geoCentroid(polygon) };
  });
}

function largest(parts) {
  return parts.reduce((best, part) => (part.area > best.area ? part : best));
}

function inBox([lon, lat], [west, south, east, north]) {
  return lon >= west && lon <= east && lat >= south && lat <= north;
}

function code(feature) {
  if (feature.id !== undefined) return isoCountries.numericToAlpha2(feature.id);
  return UNNUMBERED[feature.properties.name];
}

// Every code a map resolution knows, with its largest polygon. Two features can share an
// id (Australia and Ashmore and Cartier Is. are both 036): the bigger polygon wins.
function representativePoints(features) {
  const points = new Map();
  for (const f of features) {
    const alpha2 = code(f);
    if (!alpha2 || !f.geometry) continue;
    const best = largest(polygons(f.geometry));
    const seen = points.get(alpha2);
    if (!seen || best.area > seen.area) points.set(alpha2, best);
  }
  return points;
}

function partPoints(features) {
  const points = new Map();
  for (const [alpha2, [parent, box]] of Object.entries(PARTS)) {
    const host = features.find((f) => (f.id ?? f.properties.name) === parent);
    const candidates = host ? polygons(host.geometry).filter((p) => inBox(p.centroid, box)) : [];
    if (candidates.length === 0) throw new Error(`${alpha2}: no polygon of ${parent} inside ${box}`);
    points.set(alpha2, largest(candidates));
  }
  return points;
}

const medium = loadFeatures("50m");
const large = loadFeatures("10m");
const points = representativePoints(medium);
const sources = { "50m": points.size, "10m": 0, parts: 0 };
// The 1:10m map adds small states the 1:50m one leaves out (Gibraltar, Tuvalu...).
for (const [alpha2, point] of representativePoints(large)) {
  if (!points.has(alpha2)) {
    points.set(alpha2, point);
    sources["10m"] += 1;
  }
}
for (const [alpha2, point] of partPoints(large)) {
  if (!points.has(alpha2)) {
    points.set(alpha2, point);
    sources.parts += 1;
  }
}

const round = (value) => Math.round(value * 100) / 100;
const lines = [...points.keys()].sort().map((alpha2) => {
  const [lon, lat] = points.get(alpha2).centroid;
  const name = isoCountries.getName(alpha2, "en") ?? alpha2;
  return `  ${JSON.stringify(alpha2)}: ${JSON.stringify([round(lat), round(lon), name])}`;
});
writeFileSync(output, `{\n${lines.join(",\n")}\n}\n`);
console.log(
  `wrote ${lines.length} centroids to ${output} ` +
    `(${sources["50m"]} from 1:50m, ${sources["10m"]} added from 1:10m, ${sources.parts} territories split from a parent)`,
);
