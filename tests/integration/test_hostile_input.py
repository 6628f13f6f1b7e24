"""Over a thousand hostile inputs, through every door a user has: the REST API, the form,
an ``opt-`` link and the estimate endpoint.  Each is refused with a 4xx that names the
field, and none reaches SLURM: no sbatch is run, nothing is queued, no payload runs."""

from __future__ import annotations

import html
import random
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .conftest import HubProcess, queued_jobs

PAYLOAD_FILE = Path("/tmp/aifw-hostile-ran")
FIELDS = ("partition", "account", "qos", "reservation", "cpus", "memory", "gpus", "walltime", "preset")
OPTIONAL = {"account", "qos", "reservation", "preset"}  # "" means "the default" for these
VALID = {("gpus", "0"), ("gpus", "00")}  # no GPU is a fine request
HOSTILE_TEXT = [
    "gpp\n#SBATCH --uid=0",
    "gpp\r\n#SBATCH --wrap=id",
    f"gpp; touch {PAYLOAD_FILE}",
    f"$(touch {PAYLOAD_FILE})",
    f"`touch {PAYLOAD_FILE}`",
    "gpp && id",
    "gpp | id",
    "../../etc/passwd",
    "%s%s%n%x",
    "{{7*7}}",
    "${HOME}",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "\x00",
    "gpp\x00",
    "🚀",
    "Ω≈ç√",
    "ｇｐｐ",
    "-1",
    "0",
    "00",
    "99999999999999999999",
    "1e9",
    "0x10",
    " 1",
    "1 ",
    " ",
    "a" * 100,
    "\t",
    "gpp,acc",
    "--wrap=id",
    "NaN",
    "null",
    "true",
    "[]",
    "4096G",
    "0G",
    "8g",
    "25:00:00",
    "99-00:00:00",
    "00:60:00",
    "1-25:00:00",
]
HOSTILE_JSON = [None, True, False, -1, 10**20, 3.5, [], {}, ["gpp", "acc"], {"$ne": 1}]
UNKNOWN_KEYS = ["script", "prologue", "__class__", "req_partition", "cmd", "batch_script", "exec_prefix"]
BASE = {"preset": "quick"}  # every request is valid but for its one hostile value


def random_strings(count: int, seed: int = 20261127) -> list[str]:
    """Random text over control, shell, unicode and SLURM-meaningful characters (never all word characters)."""
    rng = random.Random(seed)
    alphabet = "\n\r\t\x00 ;|&$`()<>'\"\\#=,:*?[]{}%!~-/.0123456789aZ" + "éß漢🚀\u202e\ufeff"
    found = []
    while len(found) < count:
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        if not text.replace("_", "").isalnum():
            found.append(text)
    return found


def cases() -> list[tuple[str, object]]:
    text = HOSTILE_TEXT + random_strings(10)
    found = [(f, v) for f in FIELDS for v in text if not (v == "" and f in OPTIONAL) and (f, v) not in VALID]
    found += [(f, v) for f in FIELDS for v in HOSTILE_JSON]
    found += [(k, "x") for k in UNKNOWN_KEYS]
    return found


@pytest.fixture
def watched(hub: HubProcess) -> Iterator[HubProcess]:
    """Fails the test if anything hostile reached SLURM or ran."""
    PAYLOAD_FILE.unlink(missing_ok=True)
    before = hub.slurm_commands().get("sbatch", 0)
    yield hub
    assert hub.slurm_commands().get("sbatch", 0) == before, "a hostile input reached sbatch"
    assert queued_jobs() == {}
    assert not PAYLOAD_FILE.exists()


def assert_refused(r: requests.Response, field: str, where: str) -> None:
    assert 400 <= r.status_code < 500, f"{where} {field}: {r.status_code} {r.text[:300]}"
    assert "Traceback" not in r.text, f"{where} {field}: a traceback reached the user"


@pytest.mark.slow
def test_over_a_thousand_hostile_inputs_are_refused_and_none_reaches_slurm(watched: HubProcess):
    hub = watched
    session = hub.login("alice")
    xsrf = {"X-XSRFToken": session.cookies.get("_xsrf", "")}
    refused = 0
    for i, (field, value) in enumerate(cases()):
        options = {**BASE, field: value}
        r = hub.start("alice", options)
        assert_refused(r, field, "API")
        assert field in r.json()["message"], r.json()["message"]
        refused += 1
        if isinstance(value, str):  # forms carry only text
            form = session.post(f"{hub.url}/hub/spawn", data={**options, "_xsrf": xsrf["X-XSRFToken"]}, timeout=30)
            assert_refused(form, field, "form")
            shown = re.search(r"spawn-error-msg[^>]*>([^<]*)", form.text).group(1)
            assert f"The job settings were refused: {field}" in html.unescape(shown), shown
            refused += 1
        if i % 5:
            continue  # the link and the estimate share the API's checks: a sample of every fifth
        estimate = session.post(
            f"{hub.url}/hub/api/aifactory/estimate/alice", json={"user_options": options}, headers=xsrf, timeout=30
        )
        assert_refused(estimate, field, "estimate")
        refused += 1
        if isinstance(value, str):
            query = urllib.parse.urlencode({f"opt-{k}": v for k, v in options.items()})
            assert_refused(session.get(f"{hub.url}/hub/spawn?{query}", timeout=30), field, "link")
            refused += 1
    # A form field sent twice is refused too (a list, not one value).
    for field in FIELDS:
        form = session.post(f"{hub.url}/hub/spawn", data={field: ["1", "2"], "_xsrf": xsrf["X-XSRFToken"]}, timeout=30)
        assert_refused(form, field, "form (twice)")
        refused += 1
    assert refused >= 1000, refused
    assert hub.server("alice") is None
