"""``faultlens demo``: one command, and an incident with its root cause to look at."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest


@pytest.mark.timeout(240)
def test_demo_serves_the_ui_and_an_incident_naming_the_slow_service() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultlens.cli", "demo", "--api-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.strip().startswith(("incident:", "no incident")):
                break
        ui = next(line.rsplit(" ", 3)[0].split(" at ", 1)[1] for line in lines if "the UI is at" in line)
        incident = next((line for line in lines if line.startswith("incident:")), None)
        assert incident is not None, lines
        assert "top root cause: inventory" in incident
        page = httpx.get(incident.split()[1], timeout=10)
        assert page.status_code == 200 and "inventory" in page.text
        assert httpx.get(ui, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0


@pytest.mark.timeout(240)
def test_live_demo_runs_a_lab_into_its_server_with_faults_and_leaves_no_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultlens.cli", "demo", "--live", "--fault-every", "10s", "--api-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    children: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any(line.startswith("fault start:") for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        assert any(line.startswith("fault start:") for line in lines), lines
        ui = next(line.rsplit(" ", 3)[0].split(" at ", 1)[1] for line in lines if "the UI is at" in line)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3  # the lab's services and load generator, each a process
        services: list[str] = []
        while time.monotonic() < deadline and len(services) < 3:
            services = httpx.get(f"{ui}api/v1/services", timeout=10).json()["services"]
            time.sleep(1)
        assert len(services) >= 3, services  # their spans reached the demo's own server
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(90)
    assert code == 0
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
