"""internal_ssl: a JupyterLab's certificate, made in memory and off the hub's event loop."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aifactory_workbench.spawners import server_certs
from aifactory_workbench.spawners.server_certs import server_pems, sign_server_pair
from aifactory_workbench.spawners.spawner import server_identity


def make_ca(folder: Path, name: str = "notebooks-ca") -> Path:
    """A CA in certipy's layout (FOLDER/NAME/NAME.crt and .key), RSA as JupyterHub makes it."""
    ca_dir = folder / name
    ca_dir.mkdir(parents=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (ca_dir / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (ca_dir / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    bundle = folder / f"{name}_trust.crt"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca_dir


def test_the_certificate_names_the_user_and_the_hosts_and_is_signed_by_the_notebooks_ca(tmp_path):
    ca_dir = make_ca(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    names = ["DNS:localhost", "IP:127.0.0.1", "IP:10.77.0.11", "DNS:mn5-g01", "DNS:alice.hub.example.eu"]
    pems = sign_server_pair(ca_dir, tmp_path / "notebooks-ca_trust.crt", "user-alice", names)

    cert = x509.load_pem_x509_certificate(pems.certfile.encode())
    ca = x509.load_pem_x509_certificate((ca_dir / "notebooks-ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "user-alice"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "mn5-g01", "alice.hub.example.eu"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.77.0.11"),
    ]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    # The key is the certificate's, and it holds for the jobs' lifetime, not certipy's five years.
    key = serialization.load_pem_private_key(pems.keyfile.encode(), password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= server_certs.VALIDITY + datetime.timedelta(minutes=5)
    assert pems.cafile == (tmp_path / "notebooks-ca_trust.crt").read_text()
    # Nothing written: the hub keeps no server key on its disk.
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_it_is_made_in_a_thread_while_the_event_loop_goes_on(tmp_path, monkeypatch):
    ca_dir = make_ca(tmp_path)
    threads: list[str] = []
    sign = server_certs.sign_server_pair

    def recorded(*args):
        threads.append(threading.current_thread().name)
        return sign(*args)

    monkeypatch.setattr(server_certs, "sign_server_pair", recorded)
    pems = asyncio.run(server_pems(ca_dir, tmp_path / "notebooks-ca_trust.crt", "user-bob", ["DNS:mn5-g02"]))
    assert "BEGIN CERTIFICATE" in pems.certfile
    assert threads and threads[0] != threading.main_thread().name


def test_a_name_that_is_neither_dns_nor_ip_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not an alternative name"):
        sign_server_pair(make_ca(tmp_path), tmp_path / "notebooks-ca_trust.crt", "user-x", ["URI:http://x"])


def test_the_hub_reaches_servers_trusting_its_own_cas_alone(tmp_path, monkeypatch):
    """A tenant's server with a certificate that names a user, from a CA the system trusts
    (here one that $SSL_CERT_FILE adds), is not that user's: JupyterHub's make_ssl_context
    trusted the system's CAs as well (and loaded them at every check of every start)."""
    hub_ca = make_ca(tmp_path / "hub", "notebooks-ca")
    rogue_ca = make_ca(tmp_path / "system", "public-ca")
    monkeypatch.setenv("SSL_CERT_FILE", str(rogue_ca / "public-ca.crt"))
    trust = tmp_path / "hub" / "notebooks-ca_trust.crt"
    client = sign_server_pair(hub_ca, trust, "hub-internal", [])
    (tmp_path / "hub.key").write_text(client.keyfile)
    (tmp_path / "hub.crt").write_text(client.certfile)
    context = server_certs.hub_client_context(str(tmp_path / "hub.key"), str(tmp_path / "hub.crt"), str(trust))
    trusted = [dict(pair[0] for pair in ca["subject"])["commonName"] for ca in context.get_ca_certs()]
    assert trusted == ["notebooks-ca"]
    # Made once: every check of every starting server uses the same context.
    assert server_certs.hub_client_context(str(tmp_path / "hub.key"), str(tmp_path / "hub.crt"), str(trust)) is context

    impostor = sign_server_pair(rogue_ca, tmp_path / "system" / "public-ca_trust.crt", "user-alice", ["IP:127.0.0.1"])
    genuine = sign_server_pair(hub_ca, trust, "user-alice", ["IP:127.0.0.1"])

    async def identity_of(pems) -> str | None:
        (tmp_path / "s.key").write_text(pems.keyfile)
        (tmp_path / "s.crt").write_text(pems.certfile)
        served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        served.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=served)
        port = server.sockets[0].getsockname()[1]
        try:
            return await server_identity("127.0.0.1", port, context)
        finally:
            server.close()

    assert asyncio.run(identity_of(genuine)) == "user-alice"
    assert asyncio.run(identity_of(impostor)) is None
