"""The https front's certificate, checked at start-up: an admin learns of a certificate that
does not name the users' subdomains, has expired or does not match its key before users do."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def names_host(patterns: list[str], host: str) -> bool:
    """Whether a certificate's DNS names cover ``host`` (a wildcard covers one leftmost label)."""
    host = host.lower()
    for pattern in (p.lower() for p in patterns):
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host and host.split(".", 1)[1] == pattern[2:]:
            return True
    return False


T = TypeVar("T")


def _load(path: str, key: str, parse: Callable[[bytes], T]) -> tuple[T | None, str]:
    try:
        return parse(Path(path).read_bytes()), ""
    except OSError as e:
        return None, f"key '{key}': {path!r} cannot be read by the hub: {e.strerror}"
    except (ValueError, TypeError) as e:
        return None, f"key '{key}': {path!r} is not a PEM file the proxy can use without a passphrase ({e})"


def front_certificate_problems(cert_path: str, key_path: str, hosts: list[str]) -> list[str]:
    """What keeps the proxy from serving ``hosts`` over https with this certificate and key."""
    cert, cert_problem = _load(cert_path, "hub.ssl_cert", x509.load_pem_x509_certificate)
    key, key_problem = _load(key_path, "hub.ssl_key", lambda data: serialization.load_pem_private_key(data, None))
    if cert is None or key is None:
        return [p for p in (cert_problem, key_problem) if p]
    problems = []
    names = certificate_dns_names(cert)
    missing = [h for h in hosts if not names_host(names, h)]
    if missing:
        problems.append(
            f"key 'hub.ssl_cert': {cert_path!r} names {', '.join(names) or 'no DNS name'}, "
            f"not {', '.join(missing)}; browsers would refuse it"
        )
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC):
        problems.append(f"key 'hub.ssl_cert': {cert_path!r} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != cert.public_key().public_bytes(
        serialization.Encoding.DER, public
    ):
        problems.append(f"key 'hub.ssl_key': {key_path!r} is not the key of {cert_path!r}")
    return problems


def _subject_alt_names(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def certificate_dns_names(cert: x509.Certificate) -> list[str]:
    names = _subject_alt_names(cert)
    return names.get_values_for_type(x509.DNSName) if names else []


def certificate_names(cert: x509.Certificate) -> list[str]:
    """A certificate's DNS names and IP addresses (as text)."""
    names = _subject_alt_names(cert)
    return certificate_dns_names(cert) + (
        [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] if names else []
    )


def internal_certificate(internal_certs: Path, component: str) -> Path:
    """internal_ssl: where JupyterHub (certipy) keeps a component's certificate: "hub-internal",
    the hub's own; "proxy-client", the one the proxy presents to the hub and the servers.
    (This module is the one place that knows JupyterHub's layout of that folder.)"""
    return internal_certs / component / f"{component}.crt"


def internal_key(internal_certs: Path, component: str) -> Path:
    """internal_ssl: the key of a component's certificate (see :func:`internal_certificate`)."""
    return internal_certs / component / f"{component}.key"


def internal_trust(internal_certs: Path, ca: str = "hub-ca") -> Path:
    """internal_ssl: the bundle of certificate authorities that a CA's clients trust ("hub-ca":
    the hub's API's, which signs "hub-internal")."""
    return internal_certs / f"{ca}_trust.crt"


def internal_certificate_problems(internal_certs: Path, host: str, key: str = "hub.public_url") -> list[str]:
    """internal_ssl: the hub's own certificate must name every host it is reached at: the one a
    browser asks for (the proxy checks it) and the one the jobs on compute nodes connect to. One
    made (and kept) before that host changed would fail every page, or every server's start."""
    cert_file = internal_certificate(internal_certs, "hub-internal")
    if not cert_file.exists():
        return []  # the hub makes it at start-up, with these hosts' names
    names = list(dict.fromkeys(certificate_names(x509.load_pem_x509_certificate(cert_file.read_bytes()))))
    if names_host(names, host):
        return []
    return [
        f"key '{key}': the hub's internal certificate {cert_file} was made for "
        f"{', '.join(names) or 'no DNS name'}, not {host}; remove {internal_certs} and start the hub again "
        "to make new ones (servers still running must then be restarted)"
    ]
