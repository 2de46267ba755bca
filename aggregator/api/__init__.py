"""HTTP and WebSocket routes, registered by module.

Each module named in ``ROUTE_MODULES`` has ``routes: web.RouteTableDef`` and optionally
``setup(app)`` (e.g. to add ``cleanup_ctx`` background tasks) and ``OPENAPI_PATHS`` (a dict of
OpenAPI 3 path items merged into ``/api/openapi.json``). Other areas append their module here.
"""

from __future__ import annotations

ROUTE_MODULES: tuple[str, ...] = (
    "aggregator.api.core",
    "aggregator.api.ws",
    "aggregator.api.stats",
    "aggregator.api.offers",
    "aggregator.api.pages",
    "aggregator.api.rows",
)
