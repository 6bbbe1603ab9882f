"""faultlens: an OpenTelemetry-native fault analysis server.

The package is laid out by pipeline stage (see docs/architecture.md): ``receive`` ->
``decode`` -> ``pipeline`` -> ``store`` / ``export`` / ``analysis``, with ``api`` and ``cli``
at the edges.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
