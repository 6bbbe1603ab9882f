from __future__ import annotations

from pathlib import Path

import pytest

from faultlens.config import Config, load_config, parse_duration_s
from faultlens.errors import ConfigError

INVALID = Path(__file__).parent / "invalid"

EXPECTED_KEY = {
    "unknown_key.yaml": "store.retension",
    "bad_duration.yaml": "store.retention",
    "port_out_of_range.yaml": "receivers.grpc.port",
    "section_not_mapping.yaml": "api",
    "zero_retention.yaml": "store",
    "size_not_int.yaml": "receivers.max_request_bytes",
    "api_allowed_host_with_scheme.yaml": "api.allowed_hosts",
    "api_auth_unknown_key.yaml": "api.auth.tokens",
    "api_idle_timeout_not_duration.yaml": "api.idle_timeout",
    "api_max_connections_zero.yaml": "api.max_connections",
    "api_require_auth_not_bool.yaml": "api.require_auth_beyond_loopback",
    "api_tls_without_key_file.yaml": "api.tls.key_file",
    "http_header_timeout_zero.yaml": "receivers.http.header_timeout",
    "limits_value_max_too_small.yaml": "receivers.limits.attribute_value_max_bytes",
}


def test_defaults_match_the_otlp_ports_and_seven_day_retention() -> None:
    cfg = load_config(environ={})
    assert cfg.receivers.grpc.port == 4317
    assert cfg.receivers.http.port == 4318
    assert cfg.api.port == 8080
    assert cfg.store.retention == 7 * 86400
    assert cfg.receivers.max_request_bytes == 64 * 1024 * 1024


def test_http_listener_defaults_bound_idle_and_slow_clients_and_leave_the_api_closed_to_strangers() -> None:
    cfg = load_config(environ={})
    for listener in (cfg.receivers.http, cfg.api):
        assert (listener.idle_timeout, listener.header_timeout, listener.body_timeout) == (60.0, 10.0, 60.0)
    assert (cfg.receivers.http.max_connections, cfg.api.max_connections) == (1024, 256)
    assert cfg.api.auth is None  # the receivers' tokens, when they have some
    assert cfg.api.tls is None and cfg.api.allowed_hosts == []
    assert cfg.api.require_auth_beyond_loopback is False


def test_allowed_hosts_are_kept_lower_case_and_may_hold_wildcards() -> None:
    cfg = load_config(
        environ={"FAULTLENS_API__ALLOWED_HOSTS": "[Faultlens.Example.com, '*.corp.example', '::1']"}
    )
    assert cfg.api.allowed_hosts == ["faultlens.example.com", "*.corp.example", "::1"]


@pytest.mark.parametrize("name", sorted(EXPECTED_KEY))
def test_each_invalid_file_is_refused_naming_its_key(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(INVALID / name, environ={})
    assert info.value.key == EXPECTED_KEY[name]
    assert EXPECTED_KEY[name] in str(info.value)


def test_every_invalid_file_has_an_expectation() -> None:
    assert sorted(p.name for p in INVALID.glob("*.yaml")) == sorted(EXPECTED_KEY)


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("api:\n  port: 1000\nstore:\n  retention: 1d\n")
    env = {"FAULTLENS_API__PORT": "2000", "FAULTLENS_STORE__DATA_DIR": "/tmp/x"}
    cfg = load_config(f, overrides={"api": {"port": 3000}}, environ=env)
    assert cfg.api.port == 3000
    assert str(cfg.store.data_dir) == "/tmp/x"
    assert cfg.store.retention == 86400
    assert load_config(f, environ=env).api.port == 2000


def test_unknown_environment_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"store\.nonsense"):
        load_config(environ={"FAULTLENS_STORE__NONSENSE": "1"})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml", environ={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(90, 90.0), ("90s", 90.0), ("5m", 300.0), ("168h", 604800.0), ("7d", 604800.0), ("250ms", 0.25)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(ValueError):
        cfg.api.port = 1  # type: ignore[misc]


def test_every_problem_is_named_at_once_with_the_variable_it_came_from() -> None:
    environ = {
        "FAULTLENS_STORE__NONSENSE": "1",
        "FAULTLENS_API__PORT": "abc",
        "FAULTLENS_STORE__RETENTION": "zz",
    }
    with pytest.raises(ConfigError) as info:
        load_config(environ=environ)
    message = str(info.value)
    assert len(message.splitlines()) == 3
    for key, variable in (
        ("store.nonsense", "FAULTLENS_STORE__NONSENSE"),
        ("api.port", "FAULTLENS_API__PORT"),
        ("store.retention", "FAULTLENS_STORE__RETENTION"),
    ):
        assert f"config key '{key}'" in message and f"(set by {variable})" in message
    assert {info.value.key, *(k for k, _ in info.value.more)} == {
        "store.nonsense",
        "api.port",
        "store.retention",
    }
