"""``/api/v1/metrics/names`` and ``/api/v1/metrics/series`` over the known data set (``dataset.py``)."""

from __future__ import annotations

import httpx

from .dataset import T0, S


def test_names_newest_first_with_type_unit_and_services(client: httpx.Client) -> None:
    body = client.get("/api/v1/metrics/names").json()
    assert body["truncated"] is False
    assert [(n["name"], n["type"], n["unit"], n["services"], n["points"]) for n in body["names"]] == [
        ("http.server.duration", "histogram", "ms", ["frontend"], 1),
        ("queue.depth", "gauge", "{items}", ["payment"], 2),
    ]
    early = client.get("/api/v1/metrics/names", params={"end": T0 + 1}).json()["names"]
    assert [(n["name"], n["points"], n["last_seen_unix_nano"]) for n in early] == [("queue.depth", 1, T0)]
    only = client.get("/api/v1/metrics/names", params={"service": "frontend", "limit": 1}).json()
    assert [n["name"] for n in only["names"]] == ["http.server.duration"] and only["truncated"] is False


def test_series_per_step_and_service(client: httpx.Client) -> None:
    params = {"name": "queue.depth", "start": T0, "end": T0 + 2 * S, "step": "1s", "aggregation": "max"}
    body = client.get("/api/v1/metrics/series", params=params).json()
    assert (body["step_ns"], body["aggregation"], body["start_unix_nano"]) == (S, "max", T0)
    assert body["series"] == [
        {
            "service": "payment",
            "steps": [{"start_unix_nano": T0, "value": 3.0}, {"start_unix_nano": T0 + S, "value": 5.0}],
        }
    ]
    histogram = client.get(
        "/api/v1/metrics/series",
        params={"name": "http.server.duration", "start": T0, "end": T0 + 3 * S, "step": "3s"},
    ).json()
    assert histogram["series"][0]["steps"] == [{"start_unix_nano": T0, "value": 12.5 / 4}]  # avg of sum/count


def test_series_parameters_are_checked(client: httpx.Client) -> None:
    base = {"name": "queue.depth", "start": T0, "end": T0 + S}
    missing = client.get("/api/v1/metrics/series", params={"name": "queue.depth"})
    assert missing.status_code == 422
    bad_step = client.get("/api/v1/metrics/series", params={**base, "step": "soon"})
    assert bad_step.status_code == 422 and bad_step.json()["detail"][0]["loc"] == ["query", "step"]
    bad_agg = client.get("/api/v1/metrics/series", params={**base, "aggregation": "median"})
    assert bad_agg.status_code == 422
    too_fine = client.get("/api/v1/metrics/series", params={**base, "step": "1ms", "end": T0 + 20 * S})
    assert too_fine.status_code == 400 and "at most" in too_fine.json()["detail"]
    zero = client.get("/api/v1/metrics/series", params={**base, "step": "0s"})
    assert zero.status_code == 422 and zero.json()["detail"][0]["loc"] == ["query", "step"]
