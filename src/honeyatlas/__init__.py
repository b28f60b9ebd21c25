"""honeyatlas: a scalable, honeypot-driven threat map.

Many honeypot and IDS streams in; one normalized, enriched, stored, correlated and live
world map out. The public surface is the command line, the HTTP API and the adapter
entry-point group `honeyatlas.adapters`.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
