"""Floorwalker's aggregator: fuses agents' reports, stores them, detects offers, serves the map and API."""

__version__ = "0.1.0"
