"""Sinks: where accepted events go after the store (the live hub today)."""
