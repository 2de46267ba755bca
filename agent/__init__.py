"""Floorwalker's edge agent: sensors on a store's Raspberry Pis, published over MQTT."""

__version__ = "0.1.0"
