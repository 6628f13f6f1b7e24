"""The gallery's entries without a hub: what an entry records, that it never changes, and the
job step that copies a launched notebook into a home without overwriting a copy there."""

import json
import subprocess

from spawners.gallery import Gallery, copy_command, data_paths

NOTEBOOK = {"cells": [
    {"cell_type": "code", "source": "ds = open_dataset('/srv/data/era5/t2m.zarr')\nx = '/home/alice/private.nc'"},
    {"cell_type": "markdown", "source": "see /srv/data/readme.txt"},
    {"cell_type": "code", "source": ["files = glob('/gpfs/projects/ehpc01/run1/*.nc')"]},
]}  # fmt: skip


def publish(gallery: Gallery, **changes):
    fields = {"title": "Climatology", "author": "alice", "notebook_name": "work/clim.ipynb", "notebook": NOTEBOOK,
              "kernel": {"name": "aifactory", "display_name": "AI Factory", "modules": ["climate-tools/1.0"]},
              "lock": "numpy==2.4.6\npyarrow==26.0.1\n", "resources": {"partition": "gpp", "cpus": 2},
              "shared_storage": ["/srv/data", "/gpfs"]}  # fmt: skip
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
