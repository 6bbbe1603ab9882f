"""Exporter config: typed models reject bad keys; OTEL_EXPORTER_OTLP_* follow the spec's rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from faultlens.errors import ConfigError
from faultlens.export.config import (
    Compression,
    ExporterConfig,
    Protocol,
    append_signal_path,
    config_from_env,
    grpc_target,
    parse_headers,
)
from faultlens.types import Signal

INVALID = Path(__file__).parent / "invalid"


@pytest.mark.parametrize("case", sorted(p.name for p in INVALID.glob("*.yaml")))
def test_invalid_config_is_refused_naming_the_key(case: str) -> None:
    text = (INVALID / case).read_text()
    expected = text.splitlines()[0].removeprefix("# expect:").strip()  # the key path the error names
    with pytest.raises(ValidationError) as info:
        ExporterConfig.model_validate(yaml.safe_load(text))
    assert expected in str(info.value)


def test_defaults_validate_and_are_frozen() -> None:
    cfg = ExporterConfig()
    assert cfg.protocol is Protocol.GRPC
    with pytest.raises(ValidationError):
        cfg.name = "other"  # type: ignore[misc]


def test_http_base_endpoint_gets_signal_path_and_signal_endpoint_is_kept() -> None:
    cfg = ExporterConfig(
        protocol="http/protobuf", endpoint="http://h:4318/otlp", logs_endpoint="http://l:1/custom"
    )
    assert cfg.endpoint_for(Signal.TRACES) == "http://h:4318/otlp/v1/traces"
    assert cfg.endpoint_for(Signal.LOGS) == "http://l:1/custom"
    assert append_signal_path("http://h:4318/", Signal.METRICS) == "http://h:4318/v1/metrics"
    assert append_signal_path("http://h:4318", Signal.METRICS) == "http://h:4318/v1/metrics"


def test_grpc_scheme_decides_security() -> None:
    assert grpc_target("https://h:4317", insecure=True) == ("h:4317", True)
    assert grpc_target("http://h:4317", insecure=False) == ("h:4317", False)
    assert grpc_target("h:4317", insecure=True) == ("h:4317", False)
    assert grpc_target("h:4317", insecure=False) == ("h:4317", True)


def test_env_defaults_follow_the_spec() -> None:
    cfg = config_from_env(Signal.TRACES, {})
    assert cfg.protocol is Protocol.HTTP_PROTOBUF
    assert cfg.endpoint_for(Signal.TRACES) == "http://localhost:4318/v1/traces"
    assert cfg.timeout == 10.0
    assert cfg.compression is Compression.NONE
    assert cfg.signals == (Signal.TRACES,)


def test_env_per_signal_variables_override_generic_ones() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9999/custom/path",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "500",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=secret%20value,bad-entry,x-tenant = t1 ",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "only=logs",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "none",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json",
    }
    traces = config_from_env(Signal.TRACES, env)
    assert traces.endpoint_for(Signal.TRACES) == "http://traces:9999/custom/path"  # used as is
    assert traces.timeout == 0.5  # milliseconds
    assert traces.headers == {"api-key": "secret value", "x-tenant": "t1"}
    assert traces.compression is Compression.GZIP
    metrics = config_from_env(Signal.METRICS, env)
    assert metrics.endpoint_for(Signal.METRICS) == "http://collector:4318/v1/metrics"  # appended
    assert metrics.timeout == 2.5
    assert metrics.compression is Compression.NONE
    logs = config_from_env(Signal.LOGS, env)
    assert logs.protocol is Protocol.HTTP_JSON
    assert logs.headers == {"only": "logs"}


def test_env_grpc_endpoint_and_insecure() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    cfg = config_from_env(Signal.TRACES, env)
    assert cfg.endpoint_for(Signal.TRACES) == "collector:4317"  # no v1/traces for gRPC
    assert grpc_target(cfg.endpoint, cfg.tls.insecure) == ("collector:4317", False)
    assert (
        config_from_env(Signal.TRACES, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}).endpoint
        == "http://localhost:4317"
    )


def test_env_empty_value_counts_as_unset() -> None:
    cfg = config_from_env(
        Signal.TRACES, {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "", "OTEL_EXPORTER_OTLP_TIMEOUT": "100"}
    )
    assert cfg.timeout == 0.1


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "maybe"),
    ],
)
def test_env_bad_value_names_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_env(Signal.TRACES, {var: value})
    assert info.value.key == var


def test_env_tls_files_and_overrides() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca.pem",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/c.pem",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/k.pem",
    }
    cfg = config_from_env(Signal.LOGS, env, name="sdk-logs")
    assert (cfg.tls.ca_file, cfg.tls.cert_file, cfg.tls.key_file) == (
        Path("/ca.pem"),
        Path("/c.pem"),
        Path("/k.pem"),
    )
    assert cfg.name == "sdk-logs"


def test_headers_parser_skips_malformed_entries() -> None:
    assert parse_headers("a=1,=2,b,c=x%3Dy") == {"a": "1", "c": "x=y"}
