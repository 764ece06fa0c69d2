"""The Teams simulator's keys and TLS: RS256 signing keys and a fresh self-signed CA, so
MSAL (which wants https) can be pointed at it.

Why apart: certificates are their own job, needed only with ``tls=True``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulators._http import BackgroundServer, Handler, _Server
from simulators.teams._model import logger


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class _Tls:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it."""

    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        ca_key, server_key = _new_key(), _new_key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opsbot Teams simulator CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=7))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                           False), critical=True)
              .add_extension(ca_ski, critical=False)
              .sign(ca_key, hashes.SHA256()))
        server = (x509.CertificateBuilder()
                  .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                  .issuer_name(ca_name).public_key(server_key.public_key())
                  .serial_number(x509.random_serial_number())
                  .not_valid_before(now - dt.timedelta(minutes=5))
                  .not_valid_after(now + dt.timedelta(days=7))
                  .add_extension(x509.SubjectAlternativeName([
                      x509.DNSName("localhost"),
                      x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                  .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                  .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                 critical=False)
                  .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                      ca_ski), critical=False)
                  .sign(ca_key, hashes.SHA256()))
        self.directory = Path(tempfile.mkdtemp(prefix="teams-sim-tls-"))
        self.ca_file = self.directory / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        chain = self.directory / "server.pem"
        key_pem = server_key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
        chain.write_bytes(server.public_bytes(serialization.Encoding.PEM) + key_pem)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(chain)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _TlsServer(_Server):
    """The shared HTTP server, with TLS on every accepted connection.

    The handshake happens at the first read, in the connection's own thread, so a
    slow or broken client cannot stall the accept loop.
    """

    def __init__(self, address: tuple[str, int], handler: Handler, server_name: str,
                 context: ssl.SSLContext) -> None:
        self.tls_context = context
        super().__init__(address, handler, server_name)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        return self.tls_context.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that does not trust the CA is its problem (it says so), not a traceback."""
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            logger.debug("TLS failed with %s: %r", client_address, sys.exc_info()[1])
        else:
            super().handle_error(request, client_address)


class _TlsBackgroundServer(BackgroundServer):
    """BackgroundServer serving HTTPS."""

    def __init__(self, handler: Handler, *, host: str, port: int, name: str, server_name: str,
                 context: ssl.SSLContext) -> None:
        super().__init__(handler, host=host, port=port, name=name, server_name=server_name)
        self._context = context

    @property
    def url(self) -> str:
        return "https://" + super().url.removeprefix("http://")

    def start(self) -> None:
        if self._server is not None:
            return
        server = _TlsServer((self._host, self._requested_port), self._handler,
                            self._server_name, self._context)
        thread = threading.Thread(target=server.serve_until_stopped,
                                  name=f"{self._name}:{server.server_address[1]}", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
