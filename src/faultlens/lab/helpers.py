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
import time


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
    parent = os.getppid()
    if args and args[0] == "burn":
        burn(parent)
    elif len(args) == 2 and args[0] == "dblock":
        hold_lock(args[1], parent)
    else:
        raise SystemExit("usage: python -m faultlens.lab.helpers burn | dblock PATH")


if __name__ == "__main__":
    main()
