"""Publish and relaunch (issue 13): alice publishes a notebook from her running session; bob
launches it from the gallery, confirms, and gets a job with the recorded resources and kernel,
the notebook's copy in his home, opened; re-executing it gives the published outputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.harness import HUB_USER

from .conftest import VENV, HubProcess, execute_in_kernel, launch, sh

NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Sum of ten"},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [],
         "source": "source = '/srv/data/climate/2020.nc'  # named in the entry, not copied"},
        {"cell_type": "code", "metadata": {}, "execution_count": 2, "source": "print(sum(range(10)))",
         "outputs": [{"output_type": "stream", "name": "stdout", "text": "45\n"}]},
    ],
    "metadata": {"kernelspec": {"name": "aifactory", "display_name": "Python 3 (AI Factory)", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}  # fmt: skip


@pytest.fixture(scope="module")
def gallery_hub() -> Iterator[tuple[HubProcess, Path]]:
    top = Path(tempfile.mkdtemp(prefix="aifw-gallery-", dir="/var/tmp"))
    top.chmod(0o755)
    folder = top / "gallery"
    folder.mkdir(mode=0o755)
    shutil.chown(folder, HUB_USER, HUB_USER)
    hub = launch(gallery={"dir": str(folder), "shared_storage": ["/srv/data"]})
    yield hub, folder
    hub.shutdown()
    subprocess.run(["rm", "-rf", str(top)], check=False)


def stdout_cells(notebook: dict) -> list[str]:
    return ["".join(o.get("text", "")) for c in notebook["cells"] for o in c.get("outputs", []) if "text" in o]


@pytest.mark.slow
def test_a_published_notebook_is_relaunched_with_its_resources_and_reproduced(gallery_hub):
    hub, folder = gallery_hub
    hub.start_ready("alice", {"cpus": 2, "memory": "1G", "walltime": "00:30:00"})
    alice = hub.user_token("alice")
    contents = f"{hub.user_url('alice')}api/contents/aifw-pub.ipynb"
    model = {"type": "notebook", "content": NOTEBOOK}
    assert requests.put(contents, json=model, headers={"Authorization": f"token {alice}"}, timeout=30).ok
    bob_home = Path("/home/bob")
    try:
        said = execute_in_kernel(hub, "alice", alice, "!aifactory-publish aifw-pub.ipynb --title 'Sum of ten'")
        found = re.search(r"published aifw-pub.ipynb as entry ([0-9a-f]{12})", said)
        assert found, said
        entry_id = found.group(1)
        entry = json.loads((folder / entry_id / "entry.json").read_text())
        assert (entry["author"], entry["kernel"], entry["data_paths"]) == (
            "alice",
            "aifactory",
            ["/srv/data/climate/2020.nc"],
        )
        recorded = {k: entry["resources"][k] for k in ("cpus", "memory", "walltime")}
        assert recorded == {"cpus": 2, "memory": "1G", "walltime": "00:30:00"}
        assert re.search(r"^pyarrow==", entry["lock"], re.M) and re.search(r"^scikit-learn==", entry["lock"], re.M)
        # Immutable: the hub's files, read-only; bob cannot change or withdraw it.
        assert (folder / entry_id / "notebook.ipynb").owner() == HUB_USER
        assert subprocess.run(["sudo", "-u", "bob", "sh", "-c", f"echo x >> {folder / entry_id / 'notebook.ipynb'}"],
                              capture_output=True).returncode != 0  # fmt: skip
        gallery_page = hub.login("bob").get(f"{hub.url}/hub/gallery", timeout=30).text
        assert f'data-entry="{entry_id}"' in gallery_page and f"spawn?opt-gallery={entry_id}" in gallery_page

        # bob launches it: the filled form first, then his confirmation.
        bob = hub.login("bob")
        form = bob.get(f"{hub.url}/hub/spawn?opt-gallery={entry_id}", timeout=60)
        assert 'id="aifw-gallery-entry"' in form.text and f'name="gallery" value="{entry_id}"' in form.text
        assert re.search(r'id="cpus"[^>]*value="2"', form.text), "the form shows the recorded cores"
        xsrf = bob.cookies.get("_xsrf", path="/hub/")
        bob.post(f"{hub.url}/hub/spawn", data={"gallery": entry_id, "_xsrf": xsrf}, timeout=120)
        hub.wait_ready("bob")
        cpus, memory = sh("squeue", "-h", "-u", "bob", "-o", "%C|%m").strip().split("|")
        assert (cpus, memory) == ("2", "1G")
        copy = bob_home / "gallery" / f"aifw-pub-{entry_id}.ipynb"
        assert copy.owner() == "bob" and json.loads(copy.read_text())["cells"][2]["source"] == "print(sum(range(10)))"
        opened = hub.through_proxy("bob", hub.user_token("bob"), "")
        assert f"lab/tree/gallery/aifw-pub-{entry_id}.ipynb" in opened.url

        # Re-executed headless in bob's own job: the published output again.
        run = subprocess.run(["sudo", "-u", "bob", f"{VENV}/bin/aifactory-run-notebook", "run", str(copy),
                              "--memory", "500M", "--walltime", "00:05:00"], capture_output=True, text=True,
                             cwd="/tmp", check=True)  # fmt: skip
        job_id = run.stdout.split()[1].rstrip(":")
        executed = copy.with_name(f"{copy.stem}-job{job_id}.ipynb")
        deadline = time.monotonic() + 180
        while (
            not (executed.exists() and sh("squeue", "-h", "-j", job_id).strip() == "") and time.monotonic() < deadline
        ):
            time.sleep(2)
        assert stdout_cells(json.loads(executed.read_text())) == stdout_cells(NOTEBOOK) == ["45\n"]

        # Withdrawn by its author only; a withdrawn entry cannot be launched.
        url = f"{hub.url}/hub/api/aifactory/gallery/{entry_id}"
        assert (
            requests.delete(url, headers={"Authorization": f"token {hub.user_token('bob')}"}, timeout=30).status_code
            == 403
        )
        assert requests.delete(url, headers={"Authorization": f"token {alice}"}, timeout=30).status_code == 204
        hub.stop("bob")
        refused = hub.start("bob", {"gallery": entry_id})
        assert refused.status_code == 400 and "may have been withdrawn" in refused.text
    finally:
        shutil.rmtree(bob_home / "gallery", ignore_errors=True)
        hub.stop("bob")
        hub.stop("alice")
