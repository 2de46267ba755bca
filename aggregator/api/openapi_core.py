"""OpenAPI 3 description of the core routes (kept beside them, checked by tests against the router)."""

from __future__ import annotations

from typing import Any

OPENAPI_PATHS: dict[str, Any] = {}
SCHEMAS: dict[str, Any] = {}
