"""The aggregator's fixtures (settings on the test broker and database) for the offers app tests."""

from tests.aggregator.conftest import settings

__all__ = ["settings"]
