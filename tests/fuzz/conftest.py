"""The fuzz tier's stack: the real processes behind the real Envoy, once per backend per module,
as in the integration tier (whose fixtures these are)."""

from tests.integration.conftest import admin, anonymous, stack

__all__ = ["admin", "anonymous", "stack"]
