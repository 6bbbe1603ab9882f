"""Topologies as data: which services a lab runs, who calls whom, who has a database.

A topology is a YAML file (the built-in ones ship in ``topologies/``; a user may write their
own and pass its path). It is validated when loaded, and every error names the field::

    name: star
    entry: gateway                 # the service the load generator calls
    max_depth: 6                   # hops a request may travel (bounds rings and cycles)
    load:
      rate: 6                      # requests/s at the peak of the daily curve
      day: 10m                     # one compressed "day" of the rate curve
      mix: {browse: 6, search: 3, checkout: 1}   # operations at the entry and their weights
    services:
      - name: gateway
        work_ms: 1.0               # CPU work of one request, before its calls
        calls:
          - {to: users, p: 1.0}    # p: probability that a request makes this call
          - {to: orders, p: 0.5, ops: [checkout]}  # only for these operations
      - name: orders
        db: true                   # a SQLite file: one read and one write per request

Nothing in a topology is read by faultlens's analysis: the lab only makes telemetry.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from faultlens.durations import Seconds

__all__ = [
    "BUILTIN_TOPOLOGIES",
    "Call",
    "LoadProfile",
    "ServiceSpec",
    "Topology",
    "TopologyError",
    "builtin_topologies",
    "load_topology",
]

BUILTIN_TOPOLOGIES = ("star", "ring", "mesh", "hierarchical", "shop")
MIN_SERVICES = 2
MAX_SERVICES = 16


class TopologyError(ValueError):
    """A topology that cannot be loaded; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Call(_Model):
    to: str = Field(min_length=1)
    p: float = Field(default=1.0, ge=0.0, le=1.0)
    ops: tuple[str, ...] = ()  # empty: every operation


class ServiceSpec(_Model):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9-]*$")
    work_ms: float = Field(default=1.0, ge=0.0, le=1000.0)
    db: bool = False
    calls: tuple[Call, ...] = ()


class LoadProfile(_Model):
    rate: float = Field(default=5.0, gt=0.0, le=500.0)
    day: Seconds = Field(default=600.0, gt=0.0)
    night_share: float = Field(default=0.25, gt=0.0, le=1.0)  # rate at night / rate at peak
    mix: dict[str, float] = Field(default_factory=lambda: {"browse": 1.0})
    concurrency: int = Field(default=32, ge=1, le=1024)

    @model_validator(mode="after")
    def _mix(self) -> LoadProfile:
        if not self.mix:
            raise ValueError("mix needs at least one operation")
        for op, weight in self.mix.items():
            if weight <= 0:
                raise ValueError(f"mix.{op}: the weight must be positive")
        return self


class Topology(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    entry: str
    max_depth: int = Field(default=8, ge=1, le=32)
    load: LoadProfile = LoadProfile()
    services: tuple[ServiceSpec, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        names = [s.name for s in self.services]
        if not MIN_SERVICES <= len(names) <= MAX_SERVICES:
            raise ValueError(f"services: {len(names)} services, a lab runs {MIN_SERVICES} to {MAX_SERVICES}")
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ValueError(f"services: {name!r} appears twice")
            seen.add(name)
        if self.entry not in seen:
            raise ValueError(f"entry: {self.entry!r} is not one of the services")
        for i, s in enumerate(self.services):
            for j, c in enumerate(s.calls):
                if c.to not in seen:
                    raise ValueError(f"services[{i}].calls[{j}].to: {c.to!r} is not one of the services")
                if c.to == s.name:
                    raise ValueError(f"services[{i}].calls[{j}].to: {s.name!r} calls itself")
        return self

    def service(self, name: str) -> ServiceSpec:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def callers(self, name: str) -> list[str]:
        """Services with a call to ``name``."""
        return [s.name for s in self.services if any(c.to == name for c in s.calls)]


def builtin_topologies() -> dict[str, Topology]:
    return {name: load_topology(name) for name in BUILTIN_TOPOLOGIES}


def load_topology(name_or_path: str | Path) -> Topology:
    """A built-in topology by name, or a YAML file by path. Raises :class:`TopologyError`."""
    text = str(name_or_path)
    if text in BUILTIN_TOPOLOGIES:
        source = f"built-in topology {text!r}"
        raw = resources.files("faultlens.lab").joinpath("topologies").joinpath(f"{text}.yaml").read_text()
    else:
        path = Path(text)
        if not path.is_file():
            raise TopologyError(
                f"{text}: not a built-in topology ({', '.join(BUILTIN_TOPOLOGIES)}) nor a file"
            )
        source = str(path)
        raw = path.read_text()
    try:
        data: Any = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise TopologyError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise TopologyError(f"{source}: a topology is a mapping (name, entry, services, ...)")
    try:
        return Topology.model_validate(data)
    except ValidationError as e:
        raise TopologyError(f"{source}: {_describe(e)}") from None


def _describe(error: ValidationError) -> str:
    parts = []
    for err in error.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
