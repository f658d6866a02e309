"""A throwaway certificate authority for the API emulator's HTTPS.

Made fresh at each start (trustme: an ECDSA CA and a server certificate for the loopback
names), never written anywhere but the kubeconfig the sandbox writes, where it is the
`certificate-authority-data` clients verify the server with, as on a real cluster.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass

import trustme

# The names a client on this machine may use to reach the emulator.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServingCertificate:
    """The CA's certificate (PEM) and a server-side TLS context presenting a leaf it signed."""

    ca_pem: bytes
    server_context: ssl.SSLContext

    @property
    def ca_data(self) -> str:
        """The CA as a kubeconfig's `certificate-authority-data` (base64 of the PEM)."""
        return base64.b64encode(self.ca_pem).decode("ascii")

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (for in-process clients and tests)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))


def serving_certificate(host: str) -> ServingCertificate:
    """A new CA and a server certificate valid for `host` and the loopback names."""
    authority = trustme.CA(organization_name="rollouts sandbox")
    names = [host, *(name for name in LOOPBACK_NAMES if name != host)]
    leaf = authority.issue_cert(*names)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return ServingCertificate(authority.cert_pem.bytes(), context)
