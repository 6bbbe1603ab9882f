"""Pieces every signal's decoder shares: resources, scopes, rejection bookkeeping.

Resource and scope work is done once per ``Resource*``/``Scope*`` message and then
repeated onto the rows with ``Array.take``, never per item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from faultlens.decode import _shadow
from faultlens.decode.attributes import AttrGroups
from faultlens.decode.schema import RESOURCE_SEMCONV

I64_MAX = 2**63 - 1


@dataclass
class Owners:
    """Resources and scopes of one request, and which of them owns each item."""

    resources: list[bytes] = field(default_factory=list)
    scopes: list[bytes] = field(default_factory=list)
    scope_resource: list[int] = field(default_factory=list)
    items_per_scope: list[int] = field(default_factory=list)

    def add_scope(self, scope: bytes, n_items: int) -> None:
        self.scopes.append(scope)
        self.scope_resource.append(len(self.resources) - 1)
        self.items_per_scope.append(n_items)

    def columns(self, keep: np.ndarray | None = None) -> dict[str, pa.Array]:
        """Resource/scope columns for every item (or the items where ``keep`` is True)."""
        res = [_shadow.parse(_shadow.Resource, r, "resource") for r in self.resources]
        res_attrs = AttrGroups.of(*flatten([r.attributes for r in res]))
        scopes = [_shadow.parse(_shadow.Scope, s, "instrumentation scope") for s in self.scopes]
        scope_of_item = np.repeat(np.arange(len(self.scopes), dtype=np.int64), self.items_per_scope)
        if keep is not None:
            scope_of_item = scope_of_item[keep]
        res_of_item = np.asarray(self.scope_resource, dtype=np.int64)[scope_of_item]
        scope_idx = pa.array(scope_of_item, pa.int64())
        res_idx = pa.array(res_of_item, pa.int64())
        cols: dict[str, pa.Array] = {}
        promoted = res_attrs.promote_many([(keys, typ) for _, typ, keys in RESOURCE_SEMCONV])
        for (name, _, _), col in zip(RESOURCE_SEMCONV, promoted, strict=True):
            cols[name] = col.take(res_idx)
        cols["scope_name"] = pa.array([s.name for s in scopes], pa.string()).take(scope_idx)
        cols["scope_version"] = pa.array([s.version for s in scopes], pa.string()).take(scope_idx)
        cols["resource_attributes"] = res_attrs.json.take(res_idx)
        return cols


class Rejections:
    """Items left out of a request, counted once each, with the first reason kept."""

    def __init__(self, item: str, total: int) -> None:
        self.item = item
        self.total = total
        self.bad = np.zeros(total, dtype=bool)
        self.first = ""

    def check(self, bad: np.ndarray, reason: Callable[[int], str]) -> None:
        """Reject the items where ``bad`` is True; ``reason(i)`` says what is wrong with item i."""
        new = bad & ~self.bad
        if not new.any():
            return
        self.bad |= new
        if not self.first:
            i = int(np.flatnonzero(new)[0])
            self.first = f"{self.item} {i + 1} of {self.total} rejected: {reason(i)}"

    @property
    def count(self) -> int:
        return int(self.bad.sum())

    @property
    def keep(self) -> np.ndarray | None:
        """The mask of accepted items, or None when all are accepted."""
        return ~self.bad if self.bad.any() else None


def flatten(containers: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """The elements of many repeated fields as one list, and how many each one had."""
    counts = [len(c) for c in containers]
    flat: list[Any] = []
    for c in containers:
        flat.extend(c)
    return flat, counts
