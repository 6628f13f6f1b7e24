"""The TLS credentials of the Dask clusters a job starts (issue 21, hole 1): every port a
job opens on a node is reachable by every other tenant, so a job's schedulers, workers and
clients speak TLS with a key and certificate made for that job, and accept only a peer that
holds them (as distributed's ``Security.temporary()`` makes them, but in a folder of the
job's on the shared home, which its worker jobs on other nodes read).

The JupyterLab launcher (job/launcher.py) makes them for a session; a notebook job
(aifactory-run-notebook) makes its own with ``python -m aifactory_workbench.job.dask_tls FOLDER``, which prints
the environment as shell ``export`` lines: the session's are removed when the session ends.
"""

from __future__ import annotations

import datetime
import os
import shlex
import sys


def write_private(path: str, text: str) -> None:
    """A new file only this user reads (never one that is already there, nor through a link)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def dask_credentials(folder: str, days: int = 30) -> dict[str, str]:
    """Make the job's Dask key and certificate in ``folder``; return the Dask config (as
    environment variables) that makes every scheduler, worker and client of this job use them.

    Workers get them on their command line (``worker-extra-args``: a worker job need not inherit
    this environment), and open their own dashboards on a port of their node's loopback (a
    worker's listened on every interface), which the site's preload (lab/dashboard.py) moves at
    once to a Unix socket in the worker job's private folder; ``shared-temp-directory`` is where dask-jobqueue
    writes the worker's copy of credentials a user makes for one cluster (``security=True``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dask-internal")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("dask-internal")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = os.path.join(folder, "dask-key.pem"), os.path.join(folder, "dask-cert.pem")
    pkcs8 = serialization.PrivateFormat.PKCS8
    write_private(key_file, key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()).decode())
    write_private(cert_file, cert.public_bytes(serialization.Encoding.PEM).decode())
    tls_args = ["--tls-ca-file", cert_file, "--tls-cert", cert_file, "--tls-key", key_file]
    env = {
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
        "DASK_DISTRIBUTED__COMM__DEFAULT_SCHEME": "tls",
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": cert_file,
        "DASK_JOBQUEUE__SLURM__WORKER_EXTRA_ARGS": repr([*tls_args, "--dashboard-address", "127.0.0.1:0"]),
        "DASK_JOBQUEUE__SLURM__SHARED_TEMP_DIRECTORY": folder,
    }
    for role in ("SCHEDULER", "WORKER", "CLIENT"):
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__CERT"] = cert_file
        env[f"DASK_DISTRIBUTED__COMM__TLS__{role}__KEY"] = key_file
    return env


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "usage: python -m aifactory_workbench.job.dask_tls FOLDER  (prints the Dask config as export lines)",
            file=sys.stderr,
        )
        return 2
    try:
        env = dask_credentials(args[0])
    except OSError as e:
        print(
            f"aifactory_workbench.job.dask_tls: could not make the Dask credentials in {args[0]}: {e}", file=sys.stderr
        )
        return 1
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
