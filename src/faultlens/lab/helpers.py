"""The small processes some faults run beside a service: a CPU burner and a lock holder.

``python -m faultlens.lab.helpers burn``: spins on the CPU it was pinned to (the runner sets
its affinity and the service's to the same CPU), so the service waits for that CPU.

``python -m faultlens.lab.helpers dblock PATH``: opens the service's SQLite file, takes its
exclusive lock (``BEGIN EXCLUSIVE``) and holds it, so the service's reads and writes wait
their busy timeout and fail with "database is locked". It prints ``locked`` once it holds it.

Both exit when their parent (the runner) is gone, and on SIGTERM.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time

PARENT_ENV = "FAULTLENS_LAB_PARENT"


def runner_pid() -> int:
    """The pid of the lab runner that started this process.

    From the environment the runner sets, not ``os.getppid()`` read at start: a runner killed
    while this process was still importing would have made it an orphan already, and it
    would then wait for a parent change that never comes.
    """
    value = os.environ.get(PARENT_ENV, "")
    return int(value) if value.isdigit() else os.getppid()


def child_env() -> dict[str, str]:
    """The environment of a process the runner starts (this process is its runner)."""
    return {**os.environ, PARENT_ENV: str(os.getpid())}


def exit_with_parent(parent: int, grace_s: float = 0.0) -> None:
    """Exit this process ``grace_s`` after its parent (the lab runner) is gone, whatever it is
    doing then: a daemon thread polls the parent id, so a stuck event loop cannot keep an
    orphan alive. The graceful paths (SIGTERM, a service's own parent watch) come first."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        time.sleep(grace_s)
        os._exit(0)

    threading.Thread(target=watch, name="lab-parent-watch", daemon=True).start()


def burn(parent: int) -> None:
    x = 0
    while True:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            for i in range(1000):
                x += i
        if os.getppid() != parent:
            return


def hold_lock(path: str, parent: int) -> None:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    while os.getppid() == parent:
        time.sleep(0.2)
    conn.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    parent = runner_pid()
    if args and args[0] == "burn":
        burn(parent)
    elif len(args) == 2 and args[0] == "dblock":
        hold_lock(args[1], parent)
    else:
        raise SystemExit("usage: python -m faultlens.lab.helpers burn | dblock PATH")


if __name__ == "__main__":
    main()
