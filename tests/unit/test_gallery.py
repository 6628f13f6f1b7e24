"""The gallery's entries without a hub: what an entry records, that it never changes, and the
job step that copies a launched notebook into a home without overwriting a copy there."""

import asyncio
import json
import subprocess
from types import SimpleNamespace

from jupyterhub.httpclient import JupyterHubHTTPClient
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets

from aifactory_workbench.hub.gallery_pages import MAX_NOTEBOOK_BYTES, GalleryPublishHandler
from aifactory_workbench.spawners.gallery import Gallery, copy_command, data_paths

NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "source": "ds = open_dataset('/srv/data/era5/t2m.zarr')\nx = '/home/alice/private.nc'"},
        {"cell_type": "markdown", "source": "see /srv/data/readme.txt"},
        {"cell_type": "code", "source": ["files = glob('/gpfs/projects/ehpc01/run1/*.nc')"]},
    ]
}


def publish(gallery: Gallery, **changes):
    fields = {
        "title": "Climatology",
        "author": "alice",
        "notebook_name": "work/clim.ipynb",
        "notebook": NOTEBOOK,
        "kernel": {"name": "aifactory", "display_name": "AI Factory", "modules": ["climate-tools/1.0"]},
        "lock": "numpy==2.4.6\npyarrow==26.0.1\n",
        "resources": {"partition": "gpp", "cpus": 2},
        "shared_storage": ["/srv/data", "/gpfs"],
    }
    return gallery.publish(**(fields | changes))


def test_an_entry_names_the_shared_data_its_code_reads_and_nothing_private():
    assert data_paths(NOTEBOOK, ["/srv/data", "/gpfs"]) == [
        "/srv/data/era5/t2m.zarr",
        "/gpfs/projects/ehpc01/run1/*.nc",
    ]
    assert data_paths(NOTEBOOK, []) == []


def test_an_entry_records_what_reproduces_it_and_is_read_only(tmp_path):
    gallery = Gallery(tmp_path)
    entry = publish(gallery)
    again = publish(gallery)  # a new version is a new entry
    assert entry.id != again.id and {e.id for e in gallery.entries()} == {entry.id, again.id}
    read = gallery.get(entry.id)
    assert read == entry and read.modules == ("climate-tools/1.0",) and read.copy_name == f"clim-{entry.id}.ipynb"
    assert json.loads(gallery.notebook_path(entry).read_text()) == NOTEBOOK
    assert oct(gallery.notebook_path(entry).stat().st_mode & 0o777) == "0o444"
    assert oct((tmp_path / entry.id).stat().st_mode & 0o777) == "0o555"
    assert gallery.get("../../etc") is None and gallery.get("x" * 12) is None
    gallery.withdraw(entry)
    assert gallery.get(entry.id) is None and [e.id for e in gallery.entries()] == [again.id]


def test_a_launched_notebook_is_copied_once_and_never_over_the_users_changes(tmp_path):
    gallery = Gallery(tmp_path / "gallery")
    entry = publish(gallery)
    home = tmp_path / "home"
    step = copy_command(gallery, entry, str(home))
    subprocess.run(step, check=True)
    copy = home / "gallery" / entry.copy_name
    assert json.loads(copy.read_text()) == NOTEBOOK
    copy.write_text("my edits")
    subprocess.run(step, check=False)
    assert copy.read_text() == "my edits"


class Endless(web.RequestHandler):
    """A hostile server's contents API: a notebook that never ends (or that says it is 50 MB
    long), counting what it could send before the hub hung up."""

    sent = 0

    async def get(self, _path: str) -> None:
        megabytes = 50 if self.request.path.endswith("declared.ipynb") else 200
        if megabytes == 50:
            self.set_header("Content-Length", str(megabytes * 2**20))
        chunk = b" " * 2**20
        try:
            for _ in range(megabytes):
                self.write(chunk)
                await self.flush()
                type(self).sent += len(chunk)
        except StreamClosedError:
            return


async def read_from_hostile_server(name: str) -> tuple[int, int]:
    """The status the hub's read of ``name`` ends with, and the bytes the server got to send."""
    Endless.sent = 0
    server = HTTPServer(web.Application([(r"/user/alice/api/contents/(.*)", Endless)]))
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    spawner = SimpleNamespace(server=SimpleNamespace(url=f"http://127.0.0.1:{port}/user/alice/"), api_token="t")
    try:
        await GalleryPublishHandler.read_notebook(None, spawner, name)
    except web.HTTPError as e:
        return e.status_code, Endless.sent
    finally:
        server.stop()
        if JupyterHubHTTPClient.initialized():
            await JupyterHubHTTPClient.instance().close()
    return 200, Endless.sent


def test_the_hub_stops_reading_a_notebook_at_its_limit():
    """Issue 21, hole 13: alice's server may answer the hub's read of her notebook with no end
    (or say it is 50 MB); the hub stops at 20 MB (the limit), not at 100 MB."""
    limit = MAX_NOTEBOOK_BYTES
    # What the server got to send includes what loopback's socket buffers took before the hub's
    # close reached it: 28 MB once on a loaded machine (make test). The code before the fix read
    # 102 MB here, so the margin still tells the two apart.
    buffers = 30 * 2**20
    status, sent = asyncio.run(read_from_hostile_server("endless.ipynb"))
    assert status == 413 and sent < limit + buffers, f"{status}: the server sent {sent / 2**20:.0f} MB"
    status, sent = asyncio.run(read_from_hostile_server("declared.ipynb"))
    assert status == 413 and sent < buffers, f"{status}: the server sent {sent / 2**20:.0f} MB"
