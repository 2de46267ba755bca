"""Positioning: RSSI -> distance -> plan position, shared by the agent and the aggregator."""
