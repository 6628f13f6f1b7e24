"""PAM sign-in that tells an attacker nothing: membership is checked before the password,
every refusal takes the same time and shows the same page, and an account is locked for a
while after repeated failures (the hub's own count, as pam_faillock would keep)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jupyterhub.auth import PAMAuthenticator
from traitlets import Float, Integer

from hub.accounts import may_sign_in


class WorkbenchPAMAuthenticator(PAMAuthenticator):
    failure_delay = Float(
        help="Seconds every refused sign-in takes, whatever the reason (longer than PAM's own delay)."
    ).tag(config=True)
    lockout_failures = Integer(help="Failed sign-ins in a row that lock an account.").tag(config=True)
    lockout_seconds = Float(help="How long a locked account refuses every password.").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures: dict[str, tuple[int, float]] = {}  # user name -> (failures in a row, last at)

    def locked(self, name: str, now: float) -> bool:
        count, last = self.failures.get(name, (0, 0.0))
        return count >= self.lockout_failures and now - last < self.lockout_seconds

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> str | None:
        started = time.monotonic()
        name = str(data.get("username", ""))
        result = None
        if may_sign_in(name, self.allowed_groups) and not self.locked(name, started):
            result = await super().authenticate(handler, data)
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
            self.log.warning("Sign-in for %r locked for %.0fs after %d failures", name[:32], self.lockout_seconds,
                             count + 1)  # fmt: skip
        await asyncio.sleep(max(0.0, started + self.failure_delay - time.monotonic()))
        return None
