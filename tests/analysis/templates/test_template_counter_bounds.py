"""The template counter's memory of ids and services stays bounded as templates churn."""

from __future__ import annotations

import pytest

from faultlens.analysis.templates import (
    ChangeKind,
    TemplateCounter,
    TemplateCounterConfig,
    TemplateObservation,
)
from faultlens.analysis.templates import counter as counter_module

S = 1_000_000_000
W = 60 * S
CFG = TemplateCounterConfig(window_ns=W, warmup_windows=1, baseline_windows=3, min_baseline_windows=2)


def obs(t: int, tid: int, service: str = "svc") -> TemplateObservation:
    return TemplateObservation(service, tid, f"template {tid}", t)


def test_ids_of_templates_gone_for_long_are_forgotten_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    bound = 200
    monkeypatch.setattr(counter_module, "MAX_TEMPLATE_IDS", bound)
    c = TemplateCounter(CFG)
    news = 0
    # A template that comes every window, and 60 fresh ones a window (a miner evicting and
    # numbering upwards): 20 windows, 1,200 ids.
    for w in range(20):
        _, changes = c.observe([obs(w * W + 1, 0)] + [obs(w * W + 2, 1 + w * 60 + k) for k in range(60)])
        news += sum(ch.kind is ChangeKind.NEW for ch in changes)
    sizes = c.sizes()
    assert 0 < sizes["template_ids"] <= bound
    assert sizes["texts"] <= bound + 60  # plus the window still open
    # The steady template is still known: it is not reported NEW again.
    _, changes = c.observe([obs(20 * W + 1, 0), obs(21 * W + 1, 0)])
    assert not [ch for ch in changes if ch.kind is ChangeKind.NEW and ch.template_id == 0]
    assert news > 0


def test_a_service_silent_for_long_is_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(counter_module, "FORGET_SILENT_WINDOWS", 5)
    c = TemplateCounter(CFG)
    for w in range(12):
        batch = [obs(w * W + 1, 1, "steady")]
        if w < 2:
            batch += [obs(w * W + 1, 7, f"gone-{k}") for k in range(50)]
        c.observe(batch)
    assert c.sizes()["services"] == 1
    state = c.export_state()
    assert list(state["services"]) == ["steady"]
    # A forgotten service that comes back is counted again, from a fresh warm-up.
    windows, _ = c.observe([obs(12 * W + 1, 7, "gone-3"), obs(13 * W + 1, 1, "steady")])
    assert c.sizes()["services"] == 2
    assert any(w.service == "gone-3" for w in windows)
