"""Replay a Nezha-layout directory to an OTLP sender: the reader, converter and replayer wired."""

from __future__ import annotations

from pathlib import Path

from faultlens.datasets.nezha.reader import NezhaDataset
from faultlens.datasets.otlp import OtlpConverter
from faultlens.datasets.replay import ProgressCallback, Replayer, ReplayOptions, ReplaySummary
from faultlens.datasets.sender import OtlpSender
from faultlens.types import TimeRange


def replay_nezha(
    dataset: NezhaDataset | Path | str,
    sender: OtlpSender,
    *,
    time_range: TimeRange | None = None,
    options: ReplayOptions | None = None,
    on_progress: ProgressCallback | None = None,
) -> ReplaySummary:
    """Send every span, log record and metric row of ``time_range`` (all when None).

    What could not be read is in ``dataset.report`` afterwards. Nodes are learnt from the
    first log files so that spans and metrics carry ``k8s.node.name`` where it is known.
    """
    ds = dataset if isinstance(dataset, NezhaDataset) else NezhaDataset(dataset)
    converter = OtlpConverter(pod_nodes=ds.pod_nodes(time_range))
    replayer = Replayer(sender, converter, options, on_progress=on_progress)
    return replayer.run(ds.records(time_range))
