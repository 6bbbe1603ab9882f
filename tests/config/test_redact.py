"""Secrets never leave the process: ``faultlens config show`` and the redaction rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faultlens.config.redact import MASK, redact_text, redact_tree, redact_url

SECRETS = ("recv-t0ken", "api-t0ken", "hunter2", "qu3ry", "h3ader-value", "T0KEN/PATH", "whs3cret", "grpcpw")

CONFIG = """
receivers:
  auth:
    bearer_tokens: [recv-t0ken, second-recv-t0ken]
api:
  auth:
    bearer_tokens: [api-t0ken]
  tls:
    cert_file: /etc/faultlens/api.pem
    key_file: /etc/faultlens/api.key
pipeline:
  exporters:
    - name: backend
      protocol: http/protobuf
      endpoint: https://alice:hunter2@otlp.example.com:4318/base?api_key=qu3ry&tenant=qu3ry
      headers:
        authorization: Bearer h3ader-value
        x-scope-orgid: h3ader-value
    - name: grpc
      endpoint: bob:grpcpw@collector.example.com:4317
analysis:
  webhook:
    url: https://hooks.example.com/services/T0KEN/PATH?token=whs3cret
"""


def test_config_show_prints_no_secret_but_keeps_what_is_not_one(tmp_path: Path) -> None:
    path = tmp_path / "faultlens.yaml"
    path.write_text(CONFIG)
    done = subprocess.run(
        [sys.executable, "-m", "faultlens.cli", "config", "show", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for secret in SECRETS:
        assert secret not in done.stdout
    shown = json.loads(done.stdout)
    assert shown["receivers"]["auth"]["bearer_tokens"] == [MASK, MASK]  # how many still shows
    assert shown["api"]["auth"]["bearer_tokens"] == [MASK]
    assert shown["api"]["tls"]["key_file"] == "/etc/faultlens/api.key"  # a path, not the key
    backend, grpc = shown["pipeline"]["exporters"]
    assert backend["endpoint"] == "https://alice:***@otlp.example.com:4318/base?api_key=***&tenant=***"
    assert backend["headers"] == {"authorization": MASK, "x-scope-orgid": MASK}
    assert grpc["endpoint"] == "bob:***@collector.example.com:4317"
    assert shown["analysis"]["webhook"]["url"] == "https://hooks.example.com/***"
    assert shown["api"]["port"] == 8080 and shown["store"]["retention"] == 604800.0


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://localhost:4318", "http://localhost:4318"),
        ("https://u:p@h.example:443/v1/traces", "https://u:***@h.example:443/v1/traces"),
        ("https://token@h.example/x", "https://token@h.example/x"),  # a user name alone is not a secret
        ("http://[::1]:4318/?k=v&k2=", "http://[::1]:4318/?k=***&k2=***"),
        ("h.example:4317", "h.example:4317"),
        ("u:p@h.example:4317", "u:***@h.example:4317"),
        ("http://h.example:notaport/", MASK),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_webhook_url_keeps_only_scheme_host_and_port() -> None:
    assert redact_url("https://u:p@hooks.example:8443/services/A/B?x=1", hide_path=True) == (
        "https://u:***@hooks.example:8443/***"
    )
    assert redact_url("https://hooks.example", hide_path=True) == "https://hooks.example"


def test_redact_text_finds_urls_and_bearer_tokens_in_messages() -> None:
    text = "POST 'https://a:pw@x.example/v1?key=s' failed; sent Authorization: Bearer abc.def (retrying)"
    assert redact_text(text) == (
        "POST 'https://a:***@x.example/v1?key=***' failed; sent Authorization: Bearer *** (retrying)"
    )


def test_redact_tree_masks_secret_keys_anywhere_and_leaves_numbers() -> None:
    tree = {
        "nats": {"password": "pw", "url": "nats://u:pw@n:4222", "max_tokens": 5},
        "list": [{"api_key": "k"}],
    }
    assert redact_tree(tree) == {
        "nats": {"password": MASK, "url": "nats://u:***@n:4222", "max_tokens": 5},
        "list": [{"api_key": MASK}],
    }
