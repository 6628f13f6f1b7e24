"""internal_ssl: each JupyterLab's certificate, made in memory and signed by the hub's
``notebooks-ca``, off the hub's event loop; and the one TLS context the hub reaches them with.

JupyterHub's own ``Spawner.create_certs`` makes a 2048-bit RSA key with certipy, writes the
pair to the hub's disk and rewrites certipy's record of every certificate it ever made, all on
the event loop: while a class of fifty starts, each start held every other request for a
fraction of a second, more as the record grew. Here the key is an EC P-256 key (made in well
under a millisecond), the certificate carries what certipy's does (the ``user-<name>`` common
name, the alternative names, server and client use), nothing is written to disk (the PEMs
travel in the batch script, the hub keeps no server key), and the work runs in a thread.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: How long a server's certificate holds: longer than any job runs (the site's longest walltime,
#: extensions included), far shorter than certipy's five years.
VALIDITY = datetime.timedelta(days=90)


@dataclass(frozen=True)
class ServerPems:
    """A server's key and certificate, and the bundle of CAs it trusts, as PEM text."""

    keyfile: str
    certfile: str
    cafile: str

    def as_dict(self) -> dict[str, str]:
        return {"keyfile": self.keyfile, "certfile": self.certfile, "cafile": self.cafile}


def general_name(alt_name: str) -> x509.GeneralName:
    """``DNS:name`` or ``IP:address`` (JupyterHub's notation) as a certificate's name."""
    kind, _, value = alt_name.partition(":")
    if kind == "IP":
        return x509.IPAddress(ipaddress.ip_address(value))
    if kind == "DNS":
        return x509.DNSName(value)
    raise ValueError(f"not an alternative name (DNS:… or IP:…): {alt_name!r}")


def sign_server_pair(ca_folder: Path, trust_bundle: Path, common_name: str, alt_names: list[str]) -> ServerPems:
    """A new key and its certificate for ``common_name`` naming ``alt_names``, signed by the CA
    whose ``<folder name>.crt`` and ``.key`` are in ``ca_folder`` (certipy's layout)."""
    ca_name = ca_folder.name
    ca_cert = x509.load_pem_x509_certificate((ca_folder / f"{ca_name}.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_folder / f"{ca_name}.key").read_bytes(), password=None)
    ca_public = ca_cert.public_key()
    if not isinstance(ca_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) or not isinstance(
        ca_public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    ):
        raise ValueError(f"{ca_name}: an RSA or EC certificate authority is needed, not {type(ca_key).__name__}")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a node's clock a little behind
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([general_name(n) for n in alt_names]), False)
    cert = builder.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return ServerPems(key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), trust_bundle.read_text())


async def server_pems(ca_folder: Path, trust_bundle: Path, common_name: str, alt_names: list[str]) -> ServerPems:
    """:func:`sign_server_pair` in a thread: the hub's event loop goes on serving meanwhile."""
    return await asyncio.to_thread(sign_server_pair, ca_folder, trust_bundle, common_name, alt_names)


@functools.lru_cache(maxsize=4)
def hub_client_context(keyfile: str, certfile: str, cafile: str) -> ssl.SSLContext:
    """The hub's TLS context towards the servers: its own client certificate, trusting the hub's
    CAs (``cafile``) and nothing else; the name is checked by the certificate's subject (the hub
    reaches nodes by address, not by a name a certificate could hold). Made once per hub, not at
    every check of every starting server: JupyterHub's ``make_ssl_context`` also loads the
    system's CAs each time (tens of milliseconds on the event loop; the hub stood still for half
    a minute while a class of fifty started), and with them trusts any public CA's certificate
    whose subject names a user."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile)
    context.load_cert_chain(certfile, keyfile)
    return context
