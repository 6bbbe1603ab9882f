"""``faultlens lab``: run real instrumented services, break them on a schedule, say what broke.

``faultlens lab run --topology shop --duration 30m --faults builtin --endpoint 127.0.0.1:4317``
starts the topology's services (one process each) and its load generator, sends their
telemetry to the endpoint over OTLP/gRPC, runs the faults of the schedule and writes the
labels (``labels.jsonl``) as they start and stop. With ``--record DIR`` the services export to
a recording relay in this process instead, which writes every request to ``DIR`` and forwards
it to ``--endpoint`` if one is given; ``faultlens replay lab DIR`` sends it again.

Ctrl-C (or SIGTERM) stops the lab: the faults that are on are lifted and labelled, the load
stops, the services flush their telemetry and exit, and any process left is killed with its
process group. ``faultlens lab topologies`` lists the built-in topologies. ``docs/lab.md``
has the rest.
"""

from __future__ import annotations

import faulthandler
import signal
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from faultlens.durations import parse_duration_s
from faultlens.types import Transport

__all__ = ["register"]

lab_app = typer.Typer(help="Real instrumented services with real faults and labels.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``lab`` to the ``faultlens`` command."""
    app.add_typer(lab_app, name="lab")


@lab_app.command("topologies")
def topologies() -> None:
    """List the built-in topologies."""
    from faultlens.lab.topology import builtin_topologies

    for name, topo in builtin_topologies().items():
        dbs = sum(1 for s in topo.services if s.db)
        typer.echo(
            f"{name:<13} {len(topo.services):>2} services, {dbs} with a database, entry {topo.entry}: "
            f"{topo.description}"
        )


@lab_app.command("run")
def run(
    topology: Annotated[str, typer.Option(help="A built-in topology (lab topologies) or a YAML file.")],
    duration: Annotated[str, typer.Option(help="How long to run: 90s, 30m, 2h.")] = "30m",
    faults: Annotated[
        str,
        typer.Option(help="A schedule YAML file, 'builtin', 'builtin:PERIOD' (e.g. builtin:2m) or 'none'."),
    ] = "builtin",
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="OTLP/gRPC endpoint HOST:PORT; default 127.0.0.1:4317 (none with --record: record only)."
        ),
    ] = None,
    record: Annotated[
        Path | None, typer.Option(help="Record every OTLP request, the labels and a manifest here.")
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Service logs and databases (default: a temporary directory).")
    ] = None,
    labels_path: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="The labels file (default: DIR/labels.jsonl with --record, else "
            "./faultlens-lab-labels-<UTC time>.jsonl).",
        ),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(min=0.01, help="Peak requests/s (default: the topology's).")
    ] = None,
    day: Annotated[
        str | None, typer.Option(help="Length of one compressed day (default: the topology's).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the load generator.")] = None,
    network_faults: Annotated[
        str,
        typer.Option(
            envvar="FAULTLENS_LAB_NETWORK_FAULTS",
            help="network_delay by tc netem in network namespaces (netns), in-process (inprocess), "
            "or netns when root and the kernel has netem (auto).",
        ),
    ] = "auto",
) -> None:
    """Run a lab: services, load and faults, until --duration or Ctrl-C."""
    from faultlens.datasets.sender import make_sender
    from faultlens.lab.faults import FaultLabel, FaultType, ScheduleError, builtin_schedule, load_schedule
    from faultlens.lab.netns import NetworkFaults
    from faultlens.lab.recording import LABELS_FILE, Manifest
    from faultlens.lab.relay import RecordingRelay
    from faultlens.lab.runner import LabError, LabOptions, LabRunner
    from faultlens.lab.topology import TopologyError, load_topology

    try:
        topo = load_topology(topology)
    except TopologyError as e:
        raise typer.BadParameter(str(e), param_hint="--topology") from None
    try:
        duration_s = parse_duration_s(duration)
        day_s = parse_duration_s(day) if day is not None else None
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    names = [s.name for s in topo.services]
    with_db = [s.name for s in topo.services if s.db]
    try:
        if faults == "none":
            schedule = []
        elif faults == "builtin" or faults.startswith("builtin:"):
            callers = [n for n in names if topo.callers(n)]
            schedule = builtin_schedule(
                faults, names, with_db=with_db, with_callers=callers, duration_s=duration_s
            )
        else:
            schedule = load_schedule(Path(faults), names, with_db=with_db)
    except (ScheduleError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--faults") from None
    try:
        network = NetworkFaults(network_faults)
    except ValueError:
        raise typer.BadParameter("auto, netns or inprocess", param_hint="--network-faults") from None
    targets = tuple(sorted({f.service for f in schedule if f.type is FaultType.NETWORK_DELAY}))

    tmp = tempfile.TemporaryDirectory(prefix="faultlens-lab-") if workdir is None else None
    work = workdir if workdir is not None else Path(tmp.name)  # type: ignore[union-attr]
    target = endpoint if endpoint is not None else (None if record is not None else "127.0.0.1:4317")
    relay: RecordingRelay | None = None
    manifest: Manifest | None = None
    if labels_path is not None:
        labels = labels_path
    elif record is not None:
        labels = record / LABELS_FILE
    else:
        labels = Path(f"faultlens-lab-labels-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.jsonl")
    if record is not None:
        record.mkdir(parents=True, exist_ok=True)
        sender = make_sender(target, Transport.GRPC) if target is not None else None
        relay = RecordingRelay(record, sender)
        relay.start()
        options = LabOptions(
            endpoint=relay.url,
            protocol=Transport.HTTP,
            rate=rate,
            day_s=day_s,
            seed=seed,
            network=network,
            network_targets=targets,
        )
        manifest = Manifest(topology=topo.name, start_ns=time.time_ns())
        manifest.write(record)
    else:
        assert target is not None
        options = LabOptions(
            endpoint=target,
            protocol=Transport.GRPC,
            rate=rate,
            day_s=day_s,
            seed=seed,
            network=network,
            network_targets=targets,
        )

    stop = threading.Event()
    interrupted = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_int(signum: int, frame: FrameType | None) -> None:
        interrupted.set()
        stop.set()

    # Handled, not left to Python's KeyboardInterrupt: a process started with SIGINT ignored
    # (a shell's background job, a CI runner) gets no KeyboardInterrupt, and Ctrl-C then did nothing.
    previous = signal.signal(signal.SIGTERM, on_term)
    previous_int = signal.signal(signal.SIGINT, on_int)
    # A lab that does not stop can be asked where it is: kill -USR1 PID prints every thread's stack.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    runner = LabRunner(topo, work, options, labels=labels)
    status = 0
    try:
        typer.echo(f"lab {topo.name}: starting {len(names)} services (work dir {work})")
        runner.start()
        if runner.network is not None and runner.netns_prefix is not None:
            how = "tc netem" if runner.network.netem else f"in-process ({runner.network.reason})"
            typer.echo(f"lab {topo.name}: namespaces {runner.netns_prefix}-*; network_delay by {how}")
        typer.echo(
            f"lab {topo.name}: running for {duration_s:.0f} s, {len(schedule)} faults scheduled, "
            f"telemetry to {target or 'the recording only'}; labels in {labels}"
        )

        def on_event(event: str, label: FaultLabel) -> None:
            typer.echo(f"fault {label.id} {event}: {label.type.value} on {label.service} ({label.mechanism})")

        runner.run_schedule(schedule, duration_s, stop, on_event=on_event)
        if interrupted.is_set():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        typer.echo("interrupted (Ctrl-C): stopping the lab", err=True)
        status = 130
    except LabError as e:
        typer.echo(f"error: {e}", err=True)
        status = 1
    finally:
        runner.shutdown()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        if relay is not None and manifest is not None and record is not None:
            relay.shutdown()
            manifest.end_ns = time.time_ns()
            manifest.requests = {s.value: n for s, n in relay.writer.requests.items()}
            manifest.items = {s.value: n for s, n in relay.writer.items.items()}
            manifest.write(record)
            st = relay.stats
            items, requests = sum(manifest.items.values()), sum(manifest.requests.values())
            typer.echo(
                f"recorded {items} items in {requests} requests to {record}; forwarded {st.forwarded}, "
                f"not forwarded {st.not_forwarded}, refused {st.refused}"
            )
            for err in st.forward_errors[:3]:
                typer.echo(f"forward error: {err}", err=True)
        if runner.load_counts:
            typer.echo(f"load: {runner.load_counts}")
        cpu = runner.cpu
        typer.echo(
            f"lab CPU (runner, relay, services, load generator): {cpu.cpu_s:.1f} s over {cpu.wall_s:.1f} s, "
            f"{cpu.cores:.2f} cores"
        )
        if tmp is not None:
            tmp.cleanup()
    if status:
        raise typer.Exit(status)
