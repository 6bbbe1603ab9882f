"""The query HTTP API (OpenAPI at ``/docs``), ``/metrics``, ``/healthz`` and ``/readyz``.

``create_app(reader, metrics, health)`` builds the FastAPI application over a
:class:`~faultlens.store.base.StoreReader`; :class:`ApiServer` serves it on a thread;
:class:`HealthState` is where components report readiness. Endpoints: docs/api.md.
"""

from faultlens.api.app import create_app
from faultlens.api.health import HealthState, Readiness
from faultlens.api.server import ApiServer

__all__ = ["ApiServer", "HealthState", "Readiness", "create_app"]
