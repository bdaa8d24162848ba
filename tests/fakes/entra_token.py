"""A fake Microsoft Entra token issuer on localhost, for the SDK's real MSAL client (``MsalAuth``).

MSAL only talks HTTPS, so the fake serves TLS with a self-signed certificate made at start; a test trusts it through
``REQUESTS_CA_BUNDLE`` (MSAL uses ``requests``). Its authority is AD FS-shaped (``https://127.0.0.1:<port>/adfs``):
MSAL sends an authority on a host it does not know to Microsoft's instance discovery on the internet first, except
an AD FS (or B2C) authority, which it takes as the operator's own. So the real client discovers the token endpoint
from ``/adfs/.well-known/openid-configuration`` and asks it for a client-credentials token, all on localhost.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "entra-cert.pem", folder / "entra-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class FakeEntra:
    """Issues ``token`` to the client ``client_id`` presenting ``secret``; records every token request's form."""

    def __init__(self, folder: Path, *, client_id: str, secret: str, token: str) -> None:
        self.ca_file, key_file = _self_signed(folder)
        self.client_id, self.secret, self.token = client_id, secret, token
        self.token_requests: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != "/adfs/.well-known/openid-configuration":
                    self._json(404, {"error": "not_found"})
                    return
                self._json(200, {"issuer": f"{fake.authority}", "token_endpoint": f"{fake.authority}/oauth2/token",
                                 "authorization_endpoint": f"{fake.authority}/oauth2/authorize"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                fake.token_requests.append(form)
                if (self.path, form.get("client_id"), form.get("client_secret")) != (
                    "/adfs/oauth2/token", fake.client_id, fake.secret
                ):
                    self._json(401, {"error": "invalid_client", "error_description": "unknown client or secret"})
                    return
                self._json(200, {"access_token": fake.token, "token_type": "Bearer", "expires_in": 3600})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-entra", daemon=True)

    def start(self) -> FakeEntra:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self._server.server_port}/adfs"
