"""The pipeline: the consumer edge and the fan-out to the store, exporters and analysis."""

from faultlens.pipeline.base import BatchConsumer
from faultlens.pipeline.fanout import Fanout

__all__ = ["BatchConsumer", "Fanout"]
