"""PAM sign-in that tells an attacker nothing: membership is checked before the password,
every refusal takes the same time and shows the same page, and an account is locked for a
while after repeated failures (the hub's own count, as pam_faillock would keep).

The hub account reads no password hashes: PAM runs in a root-owned helper that answers yes
or no (root/check_password.py), called through one sudo rule."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jupyterhub.auth import PAMAuthenticator
from traitlets import Float, Integer, Unicode, default

from aifactory_workbench.root.accounts import may_sign_in
from aifactory_workbench.root.check_password import NO, YES
from aifactory_workbench.slurm.client import PASSWORD_HELPER


class WorkbenchPAMAuthenticator(PAMAuthenticator):
    failure_delay = Float(
        help="Seconds every refused sign-in takes, whatever the reason (longer than PAM's own delay)."
    ).tag(config=True)
    lockout_failures = Integer(help="Failed sign-ins in a row that lock an account.").tag(config=True)
    lockout_seconds = Float(help="How long a locked account refuses every password.").tag(config=True)
    password_helper = Unicode(
        help="The root-owned helper that answers yes or no to a user's password, run with sudo "
        "(`aifactory-site install` puts it in PREFIX/libexec, beside the hub's venv)."
    ).tag(config=True)

    @default("password_helper")
    def _installed_helper(self) -> str:
        return str(PASSWORD_HELPER)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures: dict[str, tuple[int, float]] = {}  # user name -> (failures in a row, last at)

    def locked(self, name: str, now: float) -> bool:
        count, last = self.failures.get(name, (0, 0.0))
        return count >= self.lockout_failures and now - last < self.lockout_seconds

    async def password_is_right(self, name: str, password: str) -> bool:
        helper = await asyncio.create_subprocess_exec(
            "sudo",
            "-n",
            self.password_helper,
            name,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd="/",
        )
        _, err = await helper.communicate(password.encode())
        if helper.returncode not in (YES, NO):
            self.log.error("Password check for %r failed: %s", name[:32], err.decode(errors="replace").strip()[-300:])
        return helper.returncode == YES

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> str | None:
        started = time.monotonic()
        name = str(data.get("username", ""))
        result = None
        if may_sign_in(name, self.allowed_groups) and not self.locked(name, started):
            result = name if await self.password_is_right(name, str(data.get("password", ""))) else None
        if result:
            self.failures.pop(name, None)
            return result
        if len(self.failures) > 10_000:  # names tried at random must not fill the hub's memory
            self.failures = {n: f for n, f in self.failures.items() if started - f[1] < self.lockout_seconds}
        count, last = self.failures.get(name, (0, 0.0))
        if started - last >= self.lockout_seconds:
            count = 0  # an old run of failures is forgotten
        self.failures[name] = (count + 1, time.monotonic())
        if count + 1 == self.lockout_failures:
            self.log.warning(
                "Sign-in for %r locked for %.0fs after %d failures", name[:32], self.lockout_seconds, count + 1
            )
        await asyncio.sleep(max(0.0, started + self.failure_delay - time.monotonic()))
        return None
