"""Which country a position lies in: point-in-polygon over the page's own world map.

The shapes (`data/country_shapes.json`, written by tools/build_country_shapes.py from
world-atlas countries-110m, Natural Earth) are coarse: a coastal city may fall just outside
its country's polygon, so a point inside none is given the country of the nearest polygon
vertex; and the smallest countries (Singapore, Malta, Andorra...) have no polygon at this
scale, so a point within SMALL_COUNTRY_KM of the centroid of such a country is given that one. Used once per sensor position (the public view caches the answer), so plain Python
is fast enough: about 10,000 vertices, a bounding box test first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
BUNDLED_SHAPES = DATA_DIR / "country_shapes.json"

Ring = list[tuple[float, float]]  # (lon, lat) points
SMALL_COUNTRY_KM = 40.0  # Singapore is about 50 km across, Malta 30 km, Andorra 20 km
EARTH_RADIUS_KM = 6371.0


class CountryShapes:
    def __init__(self, shapes: dict[str, list[Ring]], centroids: dict[str, tuple[float, float]] | None = None) -> None:
        """`centroids` (code -> (lat, lon)) places the countries too small for a polygon."""
        self._shapes = shapes
        self._centroids = dict(centroids or {})
        self._small = {code: point for code, point in self._centroids.items() if code not in shapes}
        self._boxes = {
            code: (min(x for r in rings for x, _ in r), min(y for r in rings for _, y in r),
                   max(x for r in rings for x, _ in r), max(y for r in rings for _, y in r))
            for code, rings in shapes.items()
        }

    @classmethod
    def load(cls, path: Path = BUNDLED_SHAPES,
             centroids: dict[str, tuple[float, float]] | None = None) -> CountryShapes:
        table = json.loads(path.read_text(encoding="utf-8"))
        return cls({code: [[(float(x), float(y)) for x, y in r] for r in rings] for code, rings in table.items()},
                   centroids)

    def centroid(self, code: str) -> tuple[float, float] | None:
        """The (lat, lon) of the country's representative point, when the table has one."""
        return self._centroids.get(code)

    def country_at(self, lat: float, lon: float) -> str | None:
        """The ISO 3166-1 alpha-2 code of the country at (lat, lon), or of the nearest one."""
        for code, (c_lat, c_lon) in self._small.items():
            if _km(lat, lon, c_lat, c_lon) <= SMALL_COUNTRY_KM:
                return code
        for code, (west, south, east, north) in self._boxes.items():
            if west <= lon <= east and south <= lat <= north and _inside(self._shapes[code], lon, lat):
                return code
        return self._nearest(lat, lon)

    def _nearest(self, lat: float, lon: float) -> str | None:
        best, best_h = None, math.inf
        phi1, lam1 = math.radians(lat), math.radians(lon)
        cos1 = math.cos(phi1)
        for code, rings in self._shapes.items():
            for r in rings:
                for x, y in r:
                    phi2 = math.radians(y)
                    h = (math.sin((phi2 - phi1) / 2) ** 2
                         + cos1 * math.cos(phi2) * math.sin((math.radians(x) - lam1) / 2) ** 2)
                    if h < best_h:
                        best, best_h = code, h
        return best


def _inside(rings: list[Ring], x: float, y: float) -> bool:
    """Even-odd rule over every ring of a country (outer rings and holes alike)."""
    inside = False
    for r in rings:
        j = len(r) - 1
        for i in range(len(r)):
            xi, yi = r[i]
            xj, yj = r[j]
            if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
                inside = not inside
            j = i
    return inside


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((phi2 - phi1) / 2) ** 2
         + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
