"""The query API is closed when it should be: Host allow-list, bearer auth, TLS, limits.

Real servers on 127.0.0.1 and real clients: the API over the shared test store with a
security policy, a whole in-process faultlens (auth from the receivers' tokens, an exporter
whose endpoint holds a password), and ``faultlens serve`` processes for the warnings and the
refusal at start. No test binds beyond loopback: the exposure tests make the API's port busy
on 127.0.0.1, so that binding it on 0.0.0.0 fails after the warnings are printed.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from faultlens.api import ApiServer, HealthState, create_app
from faultlens.api.security import ApiSecurity, host_name
from faultlens.config.exposure import api_auth, check_api_exposure, exposure_warnings, is_loopback
from faultlens.config.model import ApiConfig, AuthConfig, Config, TlsConfig
from faultlens.errors import ConfigError
from faultlens.selfmetrics import SelfMetrics
from faultlens.testing.inprocess import InProcessServer
from faultlens.testing.payloads import build_trace_request

from .dataset import Served

TOKEN = "api-s3cret"
GOOD = {"authorization": f"Bearer {TOKEN}"}
CLOSED_PATHS = ["/api/v1/services", "/api/v1/stats", "/metrics", "/openapi.json", "/docs"]


@pytest.fixture(scope="module")
def secured(served: Served) -> Iterator[httpx.Client]:
    security = ApiSecurity(
        auth=AuthConfig(bearer_tokens=["another-token", TOKEN]),
        allowed_hosts=("faultlens.example.com", "*.corp.example"),
    )
    server = ApiServer(create_app(served.store, SelfMetrics(), HealthState(), security=security), port=0)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client
    finally:
        server.shutdown()


# --- bearer auth --------------------------------------------------------------------------


@pytest.mark.parametrize("path", CLOSED_PATHS)
def test_a_request_without_a_token_is_401_with_www_authenticate(secured: httpx.Client, path: str) -> None:
    response = secured.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="faultlens"'
    assert "authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (f"Bearer {TOKEN}x", "invalid bearer token"),
        ("Bearer wrong", "invalid bearer token"),
        (f"Basic {TOKEN}", "must be 'Bearer <token>'"),
        ("Bearer", "must be 'Bearer <token>'"),
    ],
)
def test_a_wrong_token_is_401(secured: httpx.Client, value: str, detail: str) -> None:
    response = secured.get("/api/v1/services", headers={"authorization": value})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert detail in response.json()["detail"]


@pytest.mark.parametrize("path", CLOSED_PATHS)
def test_a_good_token_is_served(secured: httpx.Client, path: str) -> None:
    assert secured.get(path, headers=GOOD).status_code == 200


def test_every_configured_token_is_accepted_and_the_scheme_is_case_insensitive(secured: httpx.Client) -> None:
    assert secured.get("/api/v1/stats", headers={"authorization": "bearer another-token"}).status_code == 200
    assert secured.get("/api/v1/services", headers={"authorization": f"BEARER {TOKEN}"}).json() == {
        "services": ["frontend", "payment"]
    }


@pytest.mark.parametrize("host", [None, "evil.example"])
def test_probes_stay_open_without_a_token_under_any_host(secured: httpx.Client, host: str | None) -> None:
    headers = {"host": host} if host else {}
    assert secured.get("/healthz", headers=headers).json() == {"status": "ok"}
    assert secured.get("/readyz", headers=headers).status_code == 200  # no component declared


# --- Host allow-list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "corp.example", "faultlens.example.com.evil", "10.0.0.7"]
)
def test_a_host_that_is_not_a_name_of_this_server_is_421_even_with_a_token(
    secured: httpx.Client, host: str
) -> None:
    response = secured.get("/api/v1/services", headers={**GOOD, "host": host})
    assert response.status_code == 421
    detail = response.json()["detail"]
    assert repr(host) in detail and "api.allowed_hosts" in detail


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST:1234", "127.0.0.1:8080", "[::1]:8080", "[::1]", "faultlens.example.com:443",
     "a.corp.example", "x.y.corp.example"],
)  # fmt: skip
def test_loopback_names_the_bind_host_and_allowed_hosts_are_served(secured: httpx.Client, host: str) -> None:
    assert secured.get("/api/v1/stats", headers={**GOOD, "host": host}).status_code == 200


def test_the_host_check_comes_before_auth(secured: httpx.Client) -> None:
    assert secured.get("/api/v1/stats", headers={"host": "evil.example"}).status_code == 421


def test_host_names_lose_port_brackets_case_and_trailing_dot() -> None:
    assert host_name("Example.COM:8080") == "example.com"
    assert host_name("[::1]:80") == "::1"
    assert host_name("fe80::1") == "fe80::1"
    assert host_name("localhost.") == "localhost"


def test_a_wildcard_bind_accepts_any_address_but_not_unknown_names() -> None:
    wildcard = ApiSecurity(bind_host="0.0.0.0")
    assert wildcard.host_allowed("10.1.2.3:8080")  # a kubelet or Prometheus by pod address
    assert wildcard.host_allowed("[fd00::5]:8080")
    assert not wildcard.host_allowed("evil.example")
    assert not ApiSecurity().host_allowed("10.1.2.3:8080")  # loopback bind: loopback names only
    assert ApiSecurity(bind_host="10.1.2.3").host_allowed("10.1.2.3:8080")
    assert ApiSecurity(allowed_hosts=("*",)).host_allowed("anything.example")


# --- which tokens, exposure ---------------------------------------------------------------


def _config(**api: object) -> Config:
    return Config.model_validate({"api": api, "receivers": {"auth": {"bearer_tokens": ["recv"]}}})


def test_api_auth_defaults_to_the_receivers_tokens_and_can_be_set_or_turned_off() -> None:
    assert api_auth(_config()).bearer_tokens == ["recv"]
    assert api_auth(_config(auth={"bearer_tokens": ["own"]})).bearer_tokens == ["own"]
    assert not api_auth(_config(auth={"bearer_tokens": []})).enabled


def test_require_auth_beyond_loopback_refuses_only_an_exposed_api_without_auth() -> None:
    exposed = {"host": "0.0.0.0", "require_auth_beyond_loopback": True}
    with pytest.raises(ConfigError) as info:
        check_api_exposure(_config(**exposed, auth={"bearer_tokens": []}))
    assert info.value.key == "api.require_auth_beyond_loopback"
    check_api_exposure(_config(**exposed))  # the receivers' tokens guard it
    check_api_exposure(
        _config(host="127.0.0.1", require_auth_beyond_loopback=True, auth={"bearer_tokens": []})
    )
    check_api_exposure(_config(host="0.0.0.0", auth={"bearer_tokens": []}))  # default: warn only


def test_exposure_warnings_name_each_open_listener_beyond_loopback() -> None:
    open_everywhere = Config.model_validate(
        {"api": {"host": "0.0.0.0"}, "receivers": {"grpc": {"host": "::"}, "http": {"host": "10.0.0.5"}}}
    )
    warnings = exposure_warnings(open_everywhere)
    assert [w.split(" listens on ")[0] for w in warnings] == [
        "the OTLP/gRPC receiver",
        "the OTLP/HTTP receiver",
        "the query API",
    ]
    assert exposure_warnings(Config()) == []  # loopback by default
    tokens = Config.model_validate(
        {"api": {"host": "0.0.0.0"}, "receivers": {"auth": {"bearer_tokens": ["t"]}}}
    )
    assert exposure_warnings(tokens) == []
    assert is_loopback("127.0.0.2") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("myhost")


def _serve(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "faultlens.yaml"
    path.write_text(config)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "faultlens.cli",
            "serve",
            "--config",
            str(path),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_warns_loudly_about_each_listener_exposed_without_auth(tmp_path: Path) -> None:
    with socket.socket() as busy:  # the API's port, busy on loopback: binding 0.0.0.0 fails
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _serve(
            tmp_path,
            f"api: {{host: 0.0.0.0, port: {port}}}\n"
            "receivers: {grpc: {host: 0.0.0.0, port: 0}, http: {host: 0.0.0.0, port: 0}}\n"
            "analysis: {enabled: false}\n",
        )
    assert done.returncode == 1, done.stderr
    printed = [line for line in done.stderr.splitlines() if line.startswith("WARNING: ")]
    logged = [line for line in done.stderr.splitlines() if " WARNING faultlens.serve: " in line]
    assert len(printed) == 3 and len(logged) == 3
    assert printed[2].startswith(f"WARNING: the query API listens on 0.0.0.0:{port}, beyond loopback")
    assert "error: cannot start:" in done.stderr


def test_serve_refuses_an_exposed_api_without_auth_when_required(tmp_path: Path) -> None:
    done = _serve(tmp_path, "api: {host: 0.0.0.0, port: 0, require_auth_beyond_loopback: true}\n")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: config key 'api.require_auth_beyond_loopback': the query API would listen on 0.0.0.0 "
        "(beyond loopback) with no authentication; set api.auth.bearer_tokens (or "
        "receivers.auth.bearer_tokens) or bind api.host to 127.0.0.1"
    ]
    assert not (tmp_path / "data").exists()  # refused before anything started


# --- the whole server: receivers' tokens, /readyz redacted ---------------------------------


def test_a_server_with_receiver_tokens_closes_its_api_and_readyz_shows_no_password(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "store": {"data_dir": str(tmp_path / "data")},
            "receivers": {"grpc": {"port": 0}, "http": {"port": 0}, "auth": {"bearer_tokens": [TOKEN]}},
            "api": {"port": 0},
            "analysis": {"enabled": False},
            "pipeline": {
                "exporters": [
                    {
                        "name": "backend",
                        "protocol": "http/protobuf",
                        "endpoint": "http://alice:hunter2@127.0.0.1:9/otlp?api_key=k3y",
                        "headers": {"x-api-key": "h3ader"},
                        "retry": {"initial_interval": 0.05},
                    }
                ]
            },
        }
    )
    srv = InProcessServer(config)
    try:
        assert srv.api.get("/api/v1/stats").status_code == 401
        assert srv.api.get("/api/v1/stats", headers=GOOD).status_code == 200
        body = build_trace_request(5, services=1, seed=3).SerializeToString()
        sent = srv.otlp.post(
            "/v1/traces", content=body, headers={**GOOD, "content-type": "application/x-protobuf"}
        )
        assert sent.status_code == 200
        deadline = time.monotonic() + 10
        while True:  # the exporter has tried (and failed) to send, so last_error is set
            ready = srv.api.get("/readyz")
            details = ready.json()["details"]["exporters"]["backend"]
            if details["last_error"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert ready.status_code == 200
        assert details["endpoint"] == "http://alice:***@127.0.0.1:9/otlp?api_key=***"
        assert details["last_error"]
        for secret in ("hunter2", "k3y", "h3ader", TOKEN):
            assert secret not in ready.text
    finally:
        srv.stop()


# --- TLS ------------------------------------------------------------------------------------


def test_api_tls_serves_https_and_refuses_plain_http(served: Served, tmp_path: Path) -> None:
    cert, key = tmp_path / "api.pem", tmp_path / "api.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ApiServer(
        create_app(served.store, SelfMetrics(), HealthState()),
        port=0,
        tls=TlsConfig(cert_file=cert, key_file=key),
    )
    server.start()
    try:
        assert server.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=server.url, verify=context, timeout=10) as client:
            assert client.get("/api/v1/stats").status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/api/v1/stats", timeout=5)
    finally:
        server.shutdown()


def test_an_unreadable_api_key_file_is_a_config_error_naming_api_tls(tmp_path: Path) -> None:
    server = ApiServer(
        create_app(_NoStore(), SelfMetrics(), HealthState()),
        port=0,
        tls=TlsConfig(cert_file=tmp_path / "absent.pem", key_file=tmp_path / "absent.key"),
    )
    with pytest.raises(ConfigError) as info:
        server.start()
    assert info.value.key == "api.tls.key_file"


class _NoStore:
    """Never queried: the server refuses to start first."""


# --- timeouts and the connection cap ---------------------------------------------------------


@pytest.fixture
def limited(served: Served) -> Iterator[ApiServer]:
    limits = ApiConfig(header_timeout=0.5, idle_timeout=0.5, body_timeout=0.5, max_connections=2)
    server = ApiServer(create_app(served.store, SelfMetrics(), HealthState()), port=0, limits=limits)
    server.start()
    yield server
    server.shutdown()


def test_api_closes_a_silent_connection_while_serving_others(limited: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        started = time.monotonic()
        assert httpx.get(f"{limited.url}/api/v1/stats", timeout=5).status_code == 200
        sock.settimeout(3)
        assert sock.recv(100) == b""  # closed by the server
        assert 0.4 <= time.monotonic() - started <= 3


def test_api_over_its_connection_cap_answers_503_then_serves_again(served: Served) -> None:
    limited = ApiServer(
        create_app(served.store, SelfMetrics(), HealthState()), port=0, limits=ApiConfig(max_connections=2)
    )
    limited.start()
    held = [socket.create_connection(("127.0.0.1", limited.port), timeout=5) for _ in range(2)]
    try:
        deadline = time.monotonic() + 10
        while True:  # until the server has accepted the two (at once, unless the host is busy)
            response = httpx.get(f"{limited.url}/api/v1/stats", timeout=5)
            if response.status_code != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "too many connections (over 2)" in response.json()["detail"]
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 5
        while httpx.get(f"{limited.url}/api/v1/stats", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()
        limited.shutdown()
