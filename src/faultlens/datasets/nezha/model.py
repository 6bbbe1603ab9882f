"""Typed labels of a Nezha-layout dataset: faults and fault-free periods, and pod naming."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from faultlens.types import TimeRange

_NS_PER_S = 1_000_000_000
# Kubernetes generated names: a ReplicaSet pod-template-hash (6-10 chars) then a 5-char suffix.
_TEMPLATE_HASH = re.compile(r"^[a-z0-9]{6,10}$")
_POD_SUFFIX = re.compile(r"^[a-z0-9]{5}$")
_ORDINAL = re.compile(r"^\d{1,4}$")


def service_of_pod(pod: str) -> str:
    """The service a pod belongs to: its name without the generated Kubernetes suffixes.

    ``ts-basic-service-5dc8d4f9fd-46997`` -> ``ts-basic-service`` (Deployment: hash + suffix),
    ``redis-cart-0`` -> ``redis-cart`` (StatefulSet ordinal). Otherwise the last two
    dash-separated parts are dropped when there are at least three, as the Nezha layout
    documents; a name with fewer parts is the service itself.
    """
    parts = pod.split("-")
    if len(parts) >= 3 and _TEMPLATE_HASH.match(parts[-2]) and _POD_SUFFIX.match(parts[-1]):
        return "-".join(parts[:-2])
    if len(parts) >= 2 and _ORDINAL.match(parts[-1]):
        return "-".join(parts[:-1])
    if len(parts) >= 3:
        return "-".join(parts[:-2])
    return pod


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault. ``inject_time_ns`` comes from ``inject_time`` read as UTC.

    ``fault_type`` is kept as the dataset spells it (``exception``, ``return``,
    ``cpu_contention``, ``network_delay`` in Train-Ticket; other systems have others).
    """

    day: dt.date
    inject_time_ns: int
    pod: str
    service: str
    fault_type: str

    @property
    def inject_time(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.inject_time_ns / _NS_PER_S, tz=dt.UTC)

    @property
    def minute_ns(self) -> int:
        """Start of the minute of injection (the label of the first minute file of the fault)."""
        return self.inject_time_ns - self.inject_time_ns % (60 * _NS_PER_S)


@dataclass(frozen=True, slots=True)
class NormalPeriod:
    """A fault-free stretch from ``construct_data``: ``time_range`` spans the data it holds."""

    day: dt.date
    minute_ns: int  # the HH_MM label of its files
    time_range: TimeRange
