"""The only answer the hub gets about a password: yes or no.

The hub account reads no password hashes (it is in no ``shadow`` group): its authenticator
(hub/pam.py) asks this helper, which runs as root through one sudo rule (config/sudoers.in)
as ``PREFIX/libexec/aifactory-check-password``, a wrapper that ``aifactory-site install`` writes with
the groups whose members may sign in. The user name comes on the command line, the password
on standard input; the answer is the exit status. Accounts that may not sign in (root, the
daemons, the hub's own, members of none of the groups) are never asked about, so a
compromised hub cannot try passwords on them."""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence
from typing import BinaryIO

import pamela

from aifactory_workbench.root.accounts import may_sign_in

#: Exit statuses; any other (sudo's own refusal is 1) is a fault of the installation.
YES, NO, REFUSED = 0, 10, 11
#: The PAM service asked, as JupyterHub's PAMAuthenticator asks it.
SERVICE = "login"
#: Longer passwords are refused unread: the hub never sends one this long.
MAX_PASSWORD_BYTES = 4096


def check(name: str, password: str, groups: Collection[str]) -> int:
    if not may_sign_in(name, groups):
        return REFUSED
    try:
        pamela.authenticate(name, password, service=SERVICE)
        pamela.check_account(name, service=SERVICE)  # expired or locked accounts: no
    except pamela.PAMError:
        return NO
    return YES


def main(groups: Collection[str], argv: Sequence[str] | None = None, stdin: BinaryIO | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: aifactory-check-password USER < password", file=sys.stderr)
        return REFUSED
    data = (stdin or sys.stdin.buffer).read(MAX_PASSWORD_BYTES + 1)
    try:
        password = data.decode()
    except UnicodeDecodeError:
        return NO
    if len(data) > MAX_PASSWORD_BYTES or "\0" in password:
        return NO
    answer = check(args[0], password, groups)
    if answer == REFUSED:
        print(f"aifactory-check-password: refused: {args[0][:32]!r} may not sign in", file=sys.stderr)
    return answer
