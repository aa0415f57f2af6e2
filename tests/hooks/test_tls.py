"""TLS failures: a refused certificate or a plain-HTTP server behind an https host is a :class:`PhotaTLSError` that
names the TLS problem and is never retried (another attempt fails the same way), sync and async alike;
``test_connection`` reports it after one attempt. The ``ca_bundle`` connection extra makes a private CA trusted."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hook_helpers import API

from airflow_provider_phota.exceptions import PhotaConnectionError, PhotaTLSError, PhotaValidationError, is_retryable
from airflow_provider_phota.hooks.phota import PhotaHook
from airflow_provider_phota.testing import PhotaEmulator

IDS = f"{API}/profiles/ids"
ATTEMPTS = 3  # what the connections allow: a TLS failure must still make one attempt only


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, as files (certificate, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phota-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"profiles": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TLSServer(http.server.ThreadingHTTPServer):
    """An HTTPS server with a self-signed certificate; counts the connections opened to it."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.context = context
        self.connections = 0

    def get_request(self) -> tuple[socket.socket, Any]:
        plain, address = super().get_request()
        self.connections += 1
        # The handshake runs here; when the client refuses the certificate it fails, and the server drops it.
        return self.context.wrap_socket(plain, server_side=True), address


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[_TLSServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = _TLSServer(context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _https_url(server: _TLSServer) -> str:
    return f"https://127.0.0.1:{server.server_address[1]}"


def _schemeless(emu: PhotaEmulator) -> str:
    return urlsplit(emu.base_url).netloc  # "127.0.0.1:PORT": no scheme means https


# --- sync ---------------------------------------------------------------------------------------------------------


def test_a_self_signed_certificate_is_a_tls_connection_error(make_hook: Any, tls_server: _TLSServer) -> None:
    hook = make_hook(host=_https_url(tls_server), max_attempts=ATTEMPTS)

    with pytest.raises(PhotaTLSError) as raised:
        hook.list_profile_ids()

    message = str(raised.value)
    assert message.startswith(f"GET {IDS}: TLS error with 127.0.0.1:{tls_server.server_address[1]}: ")
    assert "certificate verify failed: self-signed certificate" in message
    assert "not retried" in message
    assert "ca_bundle" in message  # the hint says how to trust a private CA
    assert "attempts" not in message
    assert tls_server.connections == 1  # not retried
    assert raised.value.before_send is True  # a refused certificate ends the handshake: nothing was sent
    assert raised.value.retry_task is False
    assert not is_retryable(raised.value)
    assert isinstance(raised.value, PhotaConnectionError)  # what callers catching connection errors already catch


def test_the_same_server_works_once_its_certificate_is_trusted(
    set_conn: Any, tls_server: _TLSServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the failure above is the certificate, not the server."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    set_conn(host=_https_url(tls_server))

    with PhotaHook() as hook:
        assert hook.list_profile_ids() == []


def test_a_host_without_scheme_on_a_plain_http_server(make_hook: Any, emu: PhotaEmulator) -> None:
    hook = make_hook(host=_schemeless(emu), max_attempts=ATTEMPTS)
    attempts: list[str] = []
    original = hook.client.send_once

    def counting(request: Any) -> Any:
        attempts.append(request.path)
        return original(request)

    hook.client.send_once = counting

    with pytest.raises(PhotaTLSError) as raised:
        hook.list_profile_ids()

    message = str(raised.value)
    assert message.startswith(f"GET {IDS}: TLS error with {_schemeless(emu)}: wrong version number")
    assert "the server does not speak TLS" in message
    assert "http://" in message  # the hint says how to fix the connection
    assert "attempts" not in message
    assert attempts == [IDS]  # not retried
    assert emu.requests == []  # the server never saw an API request


def test_test_connection_reports_the_tls_problem(make_hook: Any, emu: PhotaEmulator, tls_server: _TLSServer) -> None:
    for host, problem in ((_https_url(tls_server), "certificate verify failed"), (_schemeless(emu), "wrong version")):
        hook = make_hook(host=host, max_attempts=ATTEMPTS, retry_wait=30, retry_max_wait=30)  # a retry would hang

        ok, message = hook.test_connection()

        assert ok is False
        assert "TLS error" in message
        assert problem in message
        assert emu.api_key not in message
    assert tls_server.connections == 1


def test_the_ca_bundle_extra_trusts_the_private_ca(
    make_hook: Any, tls_server: _TLSServer, certificate: tuple[Path, Path]
) -> None:
    hook = make_hook(host=_https_url(tls_server), ca_bundle=str(certificate[0]))

    assert hook.list_profile_ids() == []
    assert hook.test_connection()[0] is True


def test_a_ca_bundle_that_does_not_exist_is_named(set_conn: Any, tmp_path: Path) -> None:
    with pytest.raises(PhotaValidationError) as raised:
        PhotaHook(set_conn(ca_bundle=str(tmp_path / "missing.pem"))).settings  # noqa: B018 - reading is the check

    assert raised.value.fields == ["ca_bundle (connection extra)"]
    assert "missing.pem' does not exist" in str(raised.value)


# --- async --------------------------------------------------------------------------------------------------------


async def _afailure(set_conn: Any, host: str) -> PhotaConnectionError:
    hook = PhotaHook(set_conn(host=host, max_attempts=ATTEMPTS))
    try:
        with pytest.raises(PhotaTLSError) as raised:
            await hook.alist_profile_ids()
    finally:
        await hook.aclose()
    return raised.value


async def test_async_self_signed_certificate_is_a_tls_connection_error(set_conn: Any, tls_server: _TLSServer) -> None:
    error = await _afailure(set_conn, _https_url(tls_server))

    assert str(error).startswith(f"GET {IDS}: TLS error with 127.0.0.1:{tls_server.server_address[1]}: ")
    assert "certificate verify failed: self-signed certificate" in str(error)
    assert "ca_bundle" in str(error)
    assert "attempts" not in str(error)
    assert tls_server.connections == 1
    assert error.before_send is True


async def test_async_host_without_scheme_on_a_plain_http_server(set_conn: Any, emu: PhotaEmulator) -> None:
    error = await _afailure(set_conn, _schemeless(emu))

    assert str(error).startswith(f"GET {IDS}: TLS error with {_schemeless(emu)}: wrong version number")
    assert "the server does not speak TLS" in str(error)
    assert "attempts" not in str(error)
    assert emu.requests == []


async def test_async_ca_bundle_extra_trusts_the_private_ca(
    set_conn: Any, tls_server: _TLSServer, certificate: tuple[Path, Path]
) -> None:
    hook = PhotaHook(set_conn(host=_https_url(tls_server), ca_bundle=str(certificate[0])))
    try:
        assert await hook.alist_profile_ids() == []
    finally:
        await hook.aclose()
    assert tls_server.connections == 1
