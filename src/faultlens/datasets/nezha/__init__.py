"""Reader for the Nezha multi-modal RCA data layout (``rca_data/DATE``, ``construct_data/DATE``)."""

from faultlens.datasets.nezha.model import Fault, NormalPeriod, service_of_pod
from faultlens.datasets.nezha.reader import NezhaDataset

__all__ = ["Fault", "NezhaDataset", "NormalPeriod", "service_of_pod"]
