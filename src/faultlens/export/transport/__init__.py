"""Transports: send one serialized OTLP request, say what came of it. See :mod:`.base`."""

from faultlens.export.transport.base import Transport, make_transport

__all__ = ["Transport", "make_transport"]
