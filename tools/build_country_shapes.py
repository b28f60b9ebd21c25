"""Write src/honeyatlas/enrichment/data/country_shapes.json from the page's world map.

The public view places a sensor in its country (transforms/redact.py); which country a
registered position lies in is a point-in-polygon question over these shapes. They are the
map the page draws (world-atlas countries-110m, Natural Earth, public domain; see
src/honeyatlas/web/static/THIRD-PARTY.md), decoded from TopoJSON to plain rings of
[lon, lat] and keyed by ISO 3166-1 alpha-2 code (by the names of the bundled centroid table,
and by hand where Natural Earth's short names differ). Run after the map changes:

    python tools/build_country_shapes.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY = ROOT / "src/honeyatlas/web/static/countries-110m.json"
CENTROIDS = ROOT / "src/honeyatlas/enrichment/data/country_centroids.json"
OUT = ROOT / "src/honeyatlas/enrichment/data/country_shapes.json"

BY_HAND = {
    "Tanzania": "TZ", "W. Sahara": "EH", "Dem. Rep. Congo": "CD", "Dominican Rep.": "DO", "Russia": "RU",
    "Falkland Is.": "FK", "Fr. S. Antarctic Lands": "TF", "Côte d'Ivoire": "CI", "Central African Rep.": "CF",
    "Congo": "CG", "Eq. Guinea": "GQ", "eSwatini": "SZ", "Palestine": "PS", "Gambia": "GM", "Laos": "LA",
    "Iran": "IR", "Syria": "SY", "Moldova": "MD", "Turkey": "TR", "Solomon Is.": "SB", "China": "CN",
    "Taiwan": "TW", "Brunei": "BN", "Czechia": "CZ", "N. Cyprus": "CY", "Somaliland": "SO",
    "Bosnia and Herz.": "BA", "Macedonia": "MK", "S. Sudan": "SS",
}


def decode_arcs(topology: dict) -> list[list[tuple[float, float]]]:
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((round(x * sx + tx, 4), round(y * sy + ty, 4)))
        arcs.append(points)
    return arcs


def ring(indexes: list[int], arcs: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for index in indexes:
        arc = arcs[index] if index >= 0 else list(reversed(arcs[~index]))
        points.extend(arc[1:] if points else arc)
    return points


def main() -> None:
    topology = json.loads(TOPOLOGY.read_text(encoding="utf-8"))
    names = {entry[2]: code for code, entry in json.loads(CENTROIDS.read_text(encoding="utf-8")).items()}
    arcs = decode_arcs(topology)
    shapes: dict[str, list[list[tuple[float, float]]]] = {}
    for geometry in topology["objects"]["countries"]["geometries"]:
        name = geometry["properties"]["name"]
        code = names.get(name) or BY_HAND[name]
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        for polygon in polygons:
            shapes.setdefault(code, []).extend(ring(r, arcs) for r in polygon)
    OUT.write_text(json.dumps(shapes, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
    print(f"{OUT.relative_to(ROOT)}: {len(shapes)} countries, {sum(len(r) for v in shapes.values() for r in v)} points")


if __name__ == "__main__":
    main()
