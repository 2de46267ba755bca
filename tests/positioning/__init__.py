"""Tests of the positioning engine (agent/positioning)."""
