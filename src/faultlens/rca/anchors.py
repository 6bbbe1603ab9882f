"""Where a caller's path forked: blame handed back to the callee whose answer changed it.

Why: when a service answers wrongly but without failing (a wrong value, an empty list, a
status its caller did not expect), nothing in its own spans changes. The change shows one
step up: the caller takes another path once the answer arrives, so it logs new statements
or skips the usual ones, and :mod:`.spans` finds the caller's log pattern changed with
nothing changed below it, and would blame the caller.

A person reading such traces compares the calls the changed requests made with the calls
the usual ones make, and looks at the last call they still had in common: that callee's
answer is where the paths part. Here, per log-pattern finding of an operation:

- the *usual* path is the most common sequence of calls (callee services in start order)
  of the baseline's requests of the operation that log its usual statements;
- the *changed* path is the most common sequence of the window's requests of the operation
  that log anything else, when at least ``majority`` of them share it;
- when the changed path is new (at most ``new_path_share`` of all the baseline's requests of
  the operation took it: a path the baseline takes too is a branch its data decides, not a
  changed answer), and the two share a first part and then differ (the changed one stops
  early, or calls something else), the finding moves to the service of the last call they
  share, with the reason ``changed_answer``. When they part before any call, or do not part at all, the
  caller keeps it: its own code changed its path.

Calls are spans in another service whose parent belongs to the same request in the caller's
service: the span it entered by and the local spans below it (:func:`local_entries`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from faultlens.graph.frame import SpanFrame
from faultlens.rca.model import Finding, Reason

__all__ = ["call_paths", "hand_over", "local_entries"]

Path = tuple[str, ...]


def local_entries(frame: SpanFrame) -> npt.NDArray[np.int64]:
    """Per span, the row where its request entered its service: the top of its chain of
    ancestors in the same service (itself when its parent is elsewhere or unknown)."""
    parent = frame.parent
    has = parent >= 0
    same = np.zeros(frame.n, dtype=bool)
    same[has] = frame.service[parent[has]] == frame.service[has]
    entry = np.where(same, parent, np.arange(frame.n, dtype=np.int64))
    for _ in range(_MAX_ROUNDS):  # pointer jumping: log2(depth) rounds
        nxt = entry[entry]
        if np.array_equal(nxt, entry):
            break
        entry = nxt
    return entry  # a cycle of parents (hostile data) never settles: it stops after the rounds


_MAX_ROUNDS = 64  # enough for any depth a tree can have


def call_paths(frame: SpanFrame) -> tuple[npt.NDArray[np.int64], dict[int, Path]]:
    """(entry row per span, and per entry row the callee services of its calls in start order)."""
    entry = local_entries(frame)
    calls: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for child in np.nonzero(frame.cross_service())[0].tolist():
        calls[int(entry[frame.parent[child]])].append(
            (int(frame.start[child]), frame.services[frame.service[child]])
        )
    return entry, {e: tuple(s for _, s in sorted(c)) for e, c in calls.items()}


class _Side:
    """One side's call paths per request, computed once for every finding of a ranking."""

    def __init__(self, frame: SpanFrame, sigs: Sequence[str]) -> None:
        self.frame, self.sigs = frame, sigs
        self._codes = {o: i for i, o in enumerate(frame.operations)}
        self._paths: tuple[npt.NDArray[np.int64], dict[int, Path]] | None = None

    def paths(self, op: tuple[str, str], usual: str, want_usual: bool | None) -> Counter[Path]:
        """Call paths of the requests of ``op`` whose signature is (``want_usual``), is not,
        or either (None) the usual one."""
        out: Counter[Path] = Counter()
        code = self._codes.get(op)
        if code is None:
            return out
        if self._paths is None:
            self._paths = call_paths(self.frame)
        entry, paths = self._paths
        for r in np.nonzero(self.frame.operation == code)[0].tolist():
            if want_usual is None or (self.sigs[r] == usual) is want_usual:
                out[paths.get(int(entry[r]), ())] += 1
        return out


def hand_over(
    findings: Sequence[Finding],
    window: tuple[SpanFrame, Sequence[str]],
    baseline: tuple[SpanFrame, Sequence[str]],
    usual: Mapping[tuple[str, str], str],
    majority: float = 0.5,
    new_path_share: float = 0.05,
) -> list[Finding]:
    """Log-pattern findings whose changed requests parted from the usual path right after a
    call become the callee's findings (see the module docstring); the others are unchanged.

    ``window`` and ``baseline`` are (frame, log signature per span) of each side; ``usual``
    the usual signature per operation.
    """
    now, before = _Side(*window), _Side(*baseline)
    out: list[Finding] = []
    for f in findings:
        callee = ""
        if f.reason is Reason.LOG_PATTERN:
            op = (f.service, f.operation)
            norm = usual.get(op, "")
            base = before.paths(op, norm, True)
            changed = now.paths(op, norm, False)
            if base and changed:
                callee = _fork(base.most_common(1)[0][0], changed, majority)
            if callee:
                taken = before.paths(op, norm, None)
                if taken[changed.most_common(1)[0][0]] > new_path_share * sum(taken.values()):
                    callee = ""  # the baseline takes this path too
        if not callee or callee == f.service:
            out.append(f)
            continue
        out.append(
            replace(
                f,
                service=callee,
                reason=Reason.CHANGED_ANSWER,
                operation="",
                pod="",
                evidence=f"{callee}: callers took another path right after its answer: {f.evidence}",
            )
        )
    return out


def _fork(usual: Path, changed: Counter[Path], majority: float) -> str:
    """The service of the last call the usual and the (dominant) changed path share before
    they part; "" when no changed path dominates, or they part before any call, or do not."""
    path, n = changed.most_common(1)[0]
    if n < majority * sum(changed.values()) or path == usual:
        return ""
    shared = 0
    for a, b in zip(usual, path, strict=False):
        if a != b:
            break
        shared += 1
    if shared == 0 or shared == len(usual):  # parted before any call, or only added calls after
        return ""
    return usual[shared - 1]
