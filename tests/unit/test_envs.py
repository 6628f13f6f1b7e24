"""aifactory-env without the cluster: a real build with uv, from a wheel this test writes, with
no index; its kernel, lock, Dask config, listing and removal; a broken build leaves nothing."""

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aifactory_workbench.lab import envs
from tests.wheels import PROBE, PROBE_VERSION, write_wheel


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A home and a Jupyter data folder of the test's own; a wheel folder; no index."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.delenv(envs.PACKAGE_INDEX_ENV, raising=False)
    write_wheel(tmp_path / "wheels", PROBE, PROBE_VERSION)
    return tmp_path


#: The demo's users' stack (singleuser.venv), where `make install` puts it.
USERS_STACK = Path("/opt/aifactory/venv")


def offline(user: Path) -> list[str]:
    return ["--no-index", "--find-links", str(user / "wheels")]


def run_python(python: str, code: str) -> str:
    """What ``code`` prints in that Python, with none of this test's own paths or Dask settings."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("DASK_")}
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_an_environment_from_requirements_is_built_locked_registered_listed_and_removed(user):
    requirements = user / "requirements.txt"
    requirements.write_text(f"{PROBE}=={PROBE_VERSION}  # the test's own wheel\n")
    prefix = envs.create("probe-env", requirements, index=offline(user))

    assert prefix == user / "home" / ".aifactory" / "envs" / "probe-env"
    spec = json.loads((user / "jupyter" / "kernels" / "probe-env" / "kernel.json").read_text())
    python = spec["argv"][spec["argv"].index("-m") - 1]  # after the launcher that checks it
    assert python == str(prefix / "bin" / "python")
    assert spec["metadata"]["aifactory"]["lock"] == str(prefix / envs.LOCK)
    assert "probe-env" in spec["metadata"]["description"]
    # The kernel's Python imports the package at its version, and the site kernel's ipykernel.
    assert run_python(python, f"import ipykernel, {PROBE}; print({PROBE}.__version__)") == PROBE_VERSION
    lock = (prefix / envs.LOCK).read_text()
    assert "aifw-probe==0.3.1" in lock.splitlines() and "site kernel 'aifactory'" in lock

    [listed] = envs.environments()
    assert listed["name"] == "probe-env" and listed["kernel"] and listed["size"] > 0

    envs.remove("probe-env")
    assert not prefix.exists()
    assert not (user / "jupyter" / "kernels" / "probe-env").exists()
    assert envs.environments() == []


def test_the_lock_made_in_a_kernel_that_asks_for_colour_has_none(user, monkeypatch):
    """A JupyterLab kernel's environment sets FORCE_COLOR: uv's freeze, which the lock is made
    of, printed its names in bold escape codes, and the lock pinned nothing a build could read."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("CLICOLOR_FORCE", "1")
    requirements = user / "requirements.txt"
    requirements.write_text(f"{PROBE}=={PROBE_VERSION}\n")
    lock = (envs.create("coloured", requirements, index=offline(user)) / envs.LOCK).read_text()
    assert "\x1b" not in lock and f"aifw-probe=={PROBE_VERSION}" in lock.splitlines()


def test_dask_in_the_environment_runs_workers_with_its_python_and_the_sites_settings(user):
    """SLURMCluster() with no argument, in the environment's Python: its workers run that Python,
    on the site's partition; the site's own Python still gets the site's Python."""
    # The users' stack is where the site's Dask config is (aifactory-site install writes it into
    # singleuser.venv); the suite's own venv has none: the environment is made from the users'.
    stacks = [Path(sys.prefix), USERS_STACK]
    users = next((p for p in stacks if (p / "etc" / "dask" / "jobqueue.yaml").is_file()), None)
    if users is None:
        pytest.skip(f"no site Dask config in {' or '.join(map(str, stacks))} (aifactory-site install writes it)")
    site = yaml.safe_load((users / "etc" / "dask" / "jobqueue.yaml").read_text())["jobqueue"]["slurm"]
    create = (
        "import sys\nfrom aifactory_workbench.lab import envs\nprint(envs.create('dask-env', None, index=sys.argv[1:]))"
    )
    made = subprocess.run([str(users / "bin" / "python"), "-c", create, *offline(user)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    prefix = Path(made.stdout.split()[-1])
    python = str(prefix / "bin" / "python")
    shown = run_python(
        python,
        "import dask.config; from dask_jobqueue import SLURMCluster\n"
        "print(dask.config.get('jobqueue.slurm.python')); print(dask.config.get('jobqueue.slurm.queue'))\n"
        "with SLURMCluster() as c: print(c.job_script())",
    )
    assert shown.splitlines()[:2] == [python, site["queue"]]
    assert f"{python} -m distributed.cli.dask_worker" in shown
    site_python = run_python(
        str(users / "bin" / "python"), "import dask.config; print(dask.config.get('jobqueue.slurm.python'))"
    )
    assert site_python == site["python"]


def test_the_environments_dask_files_come_after_the_sites(tmp_path):
    import dask.config

    site = tmp_path / "site"
    (site / "etc" / "dask").mkdir(parents=True)
    (site / "etc" / "dask" / "jobqueue.yaml").write_text("jobqueue: {slurm: {python: /site/python, queue: gpp}}\n")
    envs.dask_config(tmp_path / "env", site_prefix=site)
    slurm = dask.config.collect(paths=[str(tmp_path / "env" / "etc" / "dask")], env={})["jobqueue"]["slurm"]
    assert slurm == {"python": str(tmp_path / "env" / "bin" / "python"), "queue": "gpp"}
    # The site's file is linked, not copied: the site's changes are followed.
    assert (tmp_path / "env" / "etc" / "dask" / "10-site-jobqueue.yaml").resolve() == site / "etc/dask/jobqueue.yaml"


def test_a_broken_requirement_is_named_and_leaves_no_environment_and_no_kernel(user):
    requirements = user / "requirements.txt"
    requirements.write_text(f"{PROBE}=={PROBE_VERSION}\naifw-missing==1.0\n")
    looked = r"looked for with --no-index --find-links .*: add --find-links FOLDER with its wheel"
    with pytest.raises(SystemExit, match=rf"'aifw-missing==1.0' failed: .*aifw-missing.*{looked}"):
        envs.create("broken", requirements, index=offline(user))
    assert list((user / "home" / ".aifactory" / "envs").iterdir()) == []
    assert not (user / "jupyter" / "kernels" / "broken").exists()


def test_a_projects_environment_is_in_its_shared_folder(user, monkeypatch):
    monkeypatch.setenv(envs.PROJECTS_DIR_ENV, str(user / "projects"))
    with pytest.raises(SystemExit, match="no shared folder"):
        envs.create("team", None, project="ehpc01", index=offline(user))
    (user / "projects" / "ehpc01").mkdir(parents=True)
    prefix = envs.create("team", None, project="ehpc01", index=offline(user))
    assert prefix == user / "projects" / "ehpc01" / "envs" / "team"
    assert prefix.parent.stat().st_mode & 0o7777 == 0o3770  # the group's, sticky: no one renames a teammate's
    assert prefix.stat().st_mode & 0o050 == 0o050
    assert [e["name"] for e in envs.environments("ehpc01")] == ["team"] and envs.environments() == []


def test_environment_yml_gives_its_pip_requirements_and_refuses_conda_packages():
    text = "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n  - toolz==0.12.1\n"
    assert envs.from_environment_yml(text + "  - pip:\n    - aifw_probe==0.3.1\n") == [
        "toolz==0.12.1",
        "aifw_probe==0.3.1",
    ]
    with pytest.raises(SystemExit, match=r"conda packages.*: numpy=1.26, conda-forge::gdal"):
        envs.from_environment_yml(text + "  - numpy=1.26\n  - conda-forge::gdal\n")
    with pytest.raises(SystemExit, match="the site's Python is 3.11"):
        envs.from_environment_yml("dependencies:\n  - python=3.9\n")


def test_uvs_errors_name_the_files_requirement():
    requirements = ["numpy>=2", "aifw-missing==1.0"]
    resolver = (
        "Using Python 3.11.2 environment at: x\n  × No solution found when resolving dependencies:\n"
        "  ╰─▶ Because aifw-missing was not found in the provided package locations and you require "
        "aifw-missing==1.0, we can conclude that your requirements are unsatisfiable.\n"
    )
    assert envs.failed_requirement(resolver, requirements).startswith("'aifw-missing==1.0' failed: No solution")
    build = "error: Failed to build `numpy==2.0.0`\n  Caused by: no compiler\n"
    assert envs.failed_requirement(build, requirements).startswith("'numpy>=2' failed")
    assert envs.failed_requirement("error: disk full\n", requirements) == "error: disk full"


def test_it_never_runs_as_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(SystemExit, match="never builds as root"):
        envs.main(["list"])


def test_list_shows_sizes(user, monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    requirements = user / "requirements.txt"
    requirements.write_text(f"{PROBE}=={PROBE_VERSION}\n")
    envs.main(["create", "sized", "--file", str(requirements), "--no-index", "--find-links", str(user / "wheels")])
    envs.main(["list"])
    line = capsys.readouterr().out.splitlines()[-1].split()
    assert line[0] == "sized" and line[2] in ("KiB", "MiB") and float(line[1]) > 0


def hashed(wheel: Path) -> str:
    """A hashed lock of the wheel, as the hub writes it for an entry (spawners/gallery.py)."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return f"{PROBE.replace('_', '-')}=={PROBE_VERSION} \\\n    --hash=sha256:{digest}\n"


def test_a_published_lock_is_built_once_in_the_relaunchers_home_then_found(user, monkeypatch, capsys):
    """What publishing sends (the lock, its base, what the build took), then build-lock of the
    hashed lock as bob: a first launch builds it, a second finds it (and registers its kernel
    again if removed)."""
    requirements = user / "requirements.txt"
    requirements.write_text(f"{PROBE}=={PROBE_VERSION}\n")
    envs.create("alices-env", requirements, index=offline(user))
    sent = envs.published("alices-env")
    assert f"aifw-probe=={PROBE_VERSION}" in sent["lock"].splitlines() and sent["base"] == "aifactory"
    assert sent["build"]["seconds"] >= 0 and sent["build"]["size"] > 0 and sent["build"]["index"] == offline(user)
    assert envs.published("aifactory") is None and envs.published("nobodys") is None
    monkeypatch.setattr(envs, "refuse_root", lambda: None)
    assert envs.main(["lock", "alices-env"]) == 0 and f"aifw-probe=={PROBE_VERSION}" in capsys.readouterr().out
    lock = user / "entry.lock"
    lock.write_text(hashed(user / "wheels" / f"{PROBE}-{PROBE_VERSION}-py3-none-any.whl"))

    (user / "bob").mkdir()
    monkeypatch.setenv("HOME", str(user / "bob"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(user / "bob-jupyter"))
    name = "gallery-0123456789abcdef0123456789abcdef"
    prefix, built = envs.build_from_lock(lock, name, sent["base"], offline(user))
    assert built and prefix == user / "bob" / ".aifactory" / "envs" / name
    spec = json.loads((user / "bob-jupyter" / "kernels" / name / "kernel.json").read_text())
    python = spec["argv"][spec["argv"].index("-m") - 1]
    assert run_python(python, f"import {PROBE}; print({PROBE}.__version__)") == PROBE_VERSION
    assert json.loads((prefix / envs.RECIPE).read_text())["lock"] == lock.read_text()

    assert envs.build_from_lock(lock, name, sent["base"]) == (prefix, False)
    shutil.rmtree(user / "bob-jupyter" / "kernels" / name)
    assert envs.build_from_lock(lock, name, sent["base"]) == (prefix, False)
    assert (user / "bob-jupyter" / "kernels" / name / "kernel.json").is_file()
    # bob removes the environment by hand to free space; its kernel stays: the next launch builds
    # it again (it refused, "a kernel exists already", and the launch opened a kernel with no Python).
    shutil.rmtree(prefix)
    assert envs.build_from_lock(lock, name, sent["base"], offline(user)) == (prefix, True)
    assert run_python(str(prefix / "bin" / "python"), f"import {PROBE}; print({PROBE}.__version__)") == PROBE_VERSION

    other = user / "other.lock"
    other.write_text(f"aifw-probe==9.9 --hash=sha256:{'0' * 64}\n")
    with pytest.raises(SystemExit, match="holds another build than this lock's"):
        envs.build_from_lock(other, name, sent["base"])
    with pytest.raises(SystemExit, match="holds another build than this lock's"):  # another base kernel
        envs.build_from_lock(lock, name, "aifactory-gpu")
    other.write_text("-e git+https://example.org/x --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(SystemExit, match="not an exact pin"):
        envs.build_from_lock(other, "gallery-fedcba9876543210fedcba9876543210", sent["base"])


def test_a_gallery_build_installs_only_files_pinned_by_hash_and_leaves_nothing_else(user, monkeypatch):
    """Issue 34, hole 1: a lock without hashes is refused; a wheel swapped after publishing
    (another file under the same name and version) is not installed, and leaves no environment."""
    monkeypatch.setattr(envs, "refuse_root", lambda: None)
    wheel = user / "wheels" / f"{PROBE}-{PROBE_VERSION}-py3-none-any.whl"
    lock = user / "entry.lock"
    lock.write_text(f"{PROBE}=={PROBE_VERSION}\n")
    with pytest.raises(SystemExit, match="has no hash"):
        envs.build_from_lock(lock, "gallery-0123456789abcdef0123456789abcdef", "aifactory", offline(user))
    lock.write_text(hashed(wheel))
    wheel.unlink()
    swapped = write_wheel(user / "wheels", PROBE, PROBE_VERSION)
    with zipfile.ZipFile(swapped, "a") as z:  # bob's addition: runs as whoever installs it
        z.writestr("aifw_evil.pth", "import os; os.system('touch /tmp/aifw-pwned')\n")
    with pytest.raises(SystemExit, match="[Hh]ash mismatch"):
        envs.build_from_lock(lock, "gallery-0123456789abcdef0123456789abcdef", "aifactory", offline(user))
    assert not (user / "home" / ".aifactory" / "envs" / "gallery-0123456789abcdef0123456789abcdef").exists()
    assert list((user / "home" / ".aifactory" / "envs").iterdir()) == []


def test_an_environment_of_the_launchers_own_is_never_installed_into_nor_reused(user, monkeypatch):
    """A folder of the launch's name that is not a build of this lock, or that others could have
    changed, is refused: nothing is installed into it."""
    monkeypatch.setattr(envs, "refuse_root", lambda: None)
    name = "gallery-0123456789abcdef0123456789abcdef"
    requirements = user / "requirements.txt"
    requirements.write_text(f"{PROBE}=={PROBE_VERSION}\n")
    own = envs.create(name, requirements, index=offline(user))  # an environment of the user's own, by that name
    before = sorted(p.name for p in own.rglob("*"))
    lock = user / "entry.lock"
    lock.write_text(hashed(user / "wheels" / f"{PROBE}-{PROBE_VERSION}-py3-none-any.whl"))
    with pytest.raises(SystemExit, match="nothing is installed into it"):
        envs.build_from_lock(lock, name, "aifactory", offline(user))
    assert sorted(p.name for p in own.rglob("*")) == before
    envs.remove(name)

    prefix, built = envs.build_from_lock(lock, name, "aifactory", offline(user))
    assert built and envs.build_from_lock(lock, name, "aifactory") == (prefix, False)
    (prefix / "lib").chmod(0o777)  # anyone could have changed it since
    with pytest.raises(SystemExit, match="not yours alone"):
        envs.build_from_lock(lock, name, "aifactory")


def test_list_json_gives_each_environment_with_its_recorded_size_yours_and_your_projects(user, monkeypatch, capsys):
    """What the hub reads (``list --json``, as the user): the size the build recorded, never a
    walk of the files; the projects' environments of the user's groups too."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv(envs.PROJECTS_DIR_ENV, str(user / "projects"))
    (user / "projects" / "ehpc01").mkdir(parents=True)
    (user / "projects" / "ehpc02" / "envs").mkdir(parents=True)  # a project the user is not in
    monkeypatch.setattr(os, "getgroups", lambda: [4242])
    monkeypatch.setattr(envs.grp, "getgrgid", lambda gid: type("G", (), {"gr_name": "ehpc01"})())
    mine = envs.create("mine", None, index=offline(user))
    envs.create("team", None, project="ehpc01", index=offline(user))
    record = json.loads((mine / envs.BUILD_RECORD).read_text())
    (mine / envs.BUILD_RECORD).write_text(json.dumps(record | {"size": 3 * 1024**2}))  # not walked
    capsys.readouterr()

    envs.main(["list", "--json"])
    listed = json.loads(capsys.readouterr().out)["environments"]
    assert [(e["name"], e["scope"], e["project"]) for e in listed] == [
        ("mine", "personal", ""),
        ("team", "project", "ehpc01"),
    ]
    assert listed[0]["size"] == 3 * 1024**2 and listed[0]["size_text"] == "3.0 MiB"
    assert listed[0]["kernel"] == "mine" and listed[0]["base"] == "aifactory"
    assert listed[0]["path"] == str(mine) and listed[0]["built"].endswith("Z")

    (mine / envs.BUILD_RECORD).unlink()  # an environment built before sizes were recorded
    envs.main(["list", "--json"])
    assert json.loads(capsys.readouterr().out)["environments"][0]["size_text"] == "size unknown"
    envs.main(["lock", "mine"])  # after changing it by hand: records its size again
    assert json.loads((mine / envs.BUILD_RECORD).read_text())["size"] > 0


def test_a_build_record_that_is_a_fifo_or_huge_cannot_hold_the_listing(user):
    """What the hub runs as the user reads only a regular file's first 64 KiB: a FIFO in its
    place (which would block a read forever) or a huge file gives "size unknown"."""
    prefix = envs.create("odd", None, index=offline(user))
    (prefix / envs.BUILD_RECORD).unlink()
    os.mkfifo(prefix / envs.BUILD_RECORD)
    assert envs.environments()[0]["size_text"] == "size unknown"
    (prefix / envs.BUILD_RECORD).unlink()
    (prefix / envs.BUILD_RECORD).write_text('{"size": 1, "pad": "' + "x" * 1024**2 + '"}')
    assert envs.environments()[0]["size_text"] == "size unknown"


def test_a_huge_kernel_spec_or_base_cannot_flood_the_listing(user, monkeypatch, capsys):
    """The attack: the user's own kernel.json (read by the listing the hub runs as them, whose
    answer the hub reads) made huge, or naming a huge base: the listing printed it all. Now it
    reads only a regular file's first 64 KiB and leaves out any field too long to be one."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    envs.create("probe-env", None, index=offline(user))
    spec_file = user / "jupyter" / "kernels" / "probe-env" / "kernel.json"
    spec = json.loads(spec_file.read_text())

    def listed_with(base: str) -> tuple[int, dict]:
        spec["metadata"]["aifactory"]["base"] = base
        spec_file.write_text(json.dumps(spec))
        capsys.readouterr()
        envs.main(["list", "--json"])
        out = capsys.readouterr().out
        return len(out), json.loads(out)["environments"][0]

    size, listed = listed_with("x" * 60_000)  # a spec under 64 KiB, with a base no kernel has
    assert size < 4096 and listed["base"] == "" and listed["kernel"] == "probe-env"
    size, listed = listed_with("x" * 10 * 1024**2)  # a spec of 10 MiB: not read
    assert size < 4096 and listed["base"] == "" and listed["kernel"] == ""
    size, listed = listed_with("aifactory")
    assert listed["base"] == "aifactory" and listed["kernel"] == "probe-env"


def test_a_teammates_thousand_folders_cannot_push_the_listing_past_what_the_hub_reads(user, monkeypatch, capsys):
    """The attack: a project member makes 1500 environment-like folders (and one of a long odd
    name) in the project's shared folder: every member's ``list --json`` grew past what the hub
    reads (256 KiB), so their listing failed whole. Now it prints at most JSON_MAX_ENVIRONMENTS,
    counts the rest, and counts names no environment could have as unreadable."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv(envs.PROJECTS_DIR_ENV, str(user / "projects"))
    monkeypatch.setattr(os, "getgroups", lambda: [4242])
    monkeypatch.setattr(envs.grp, "getgrgid", lambda gid: type("G", (), {"gr_name": "ehpc01"})())
    names = [user / "home" / ".aifactory" / "envs" / "mine"]
    names += [user / "projects" / "ehpc01" / "envs" / f"junk-{i:04d}-{'x' * 40}" for i in range(1500)]
    names.append(user / "projects" / "ehpc01" / "envs" / ("é" * 120))
    for prefix in names:
        (prefix / "bin").mkdir(parents=True)
        (prefix / "bin" / "python").touch()
    envs.main(["list", "--json"])
    out = capsys.readouterr().out
    assert len(out.encode()) < 256 * 1024, f"{len(out.encode())} bytes"
    answer = json.loads(out)
    assert answer["environments"][0]["name"] == "mine" and len(answer["environments"]) == envs.JSON_MAX_ENVIRONMENTS
    assert answer["more"] == 1501 - envs.JSON_MAX_ENVIRONMENTS and answer["unreadable"] == 1


@pytest.mark.parametrize("record", ["kernel", "build"])
def test_a_kernel_spec_or_build_record_swapped_for_a_fifo_cannot_hold_the_listing(user, monkeypatch, record):
    """The attack: kernel.json or build.json checked to be a file, then swapped for a FIFO
    before it is opened (played: every path is said to be a file), which would block the
    listing's read forever. Now a record is opened without blocking and read only if regular."""
    prefix = envs.create("probe-env", None, index=offline(user))
    path = (
        user / "jupyter" / "kernels" / "probe-env" / "kernel.json" if record == "kernel" else prefix / envs.BUILD_RECORD
    )
    path.unlink()
    os.mkfifo(path)
    monkeypatch.setattr(Path, "is_file", lambda self: True)
    listed: list[list[dict]] = []
    listing = threading.Thread(target=lambda: listed.append(envs.environments()), daemon=True)
    listing.start()
    listing.join(5)
    try:
        assert not listing.is_alive(), "the listing blocks on the FIFO"
    finally:  # a reader still blocked is let go
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    [env] = listed[0]
    assert env["size_text"] == "size unknown" if record == "build" else env["kernel"] == ""


@pytest.mark.parametrize(
    ("file", "text"),
    [
        ("requirements.txt", "# aifactory: module gcc/12\nnumpy==2.0\n#aifactory:module  netcdf/4.9  \n# a comment\n"),
        ("environment.yml", "dependencies: [pip]\naifactory:\n  modules: [gcc/12, netcdf/4.9]\n"),
        ("pyproject.toml", '[project]\nname = "x"\n[tool.aifactory]\nmodules = ["gcc/12", "netcdf/4.9"]\n'),
    ],
)
def test_each_kind_of_file_asks_for_site_modules_in_one_form(tmp_path, file, text):
    (tmp_path / file).write_text(text)
    assert envs.modules_asked(tmp_path / file) == ["gcc/12", "netcdf/4.9"]


@pytest.mark.parametrize(
    ("file", "text"),
    [
        ("requirements.txt", "# aifactory: module gcc/12;rm\n"),
        ("environment.yml", "aifactory:\n  modules: gcc/12\n"),
        ("environment.yml", "aifactory: [gcc/12]\n"),
        ("pyproject.toml", "[tool.aifactory]\nmodules = [12]\n"),
    ],
)
def test_a_module_that_is_not_a_module_name_is_refused(tmp_path, file, text):
    (tmp_path / file).write_text(text)
    with pytest.raises(SystemExit):
        envs.modules_asked(tmp_path / file)


def test_the_modules_a_file_asks_for_are_loaded_for_the_build_and_by_its_kernel(user, monkeypatch):
    """After the site kernel's: for uv's install, in the kernel's spec (its workers inherit them
    from the kernel's environment), and in build.json."""
    loaded = []

    def with_modules(modules, command):
        loaded.append(list(modules))
        return command, dict(os.environ)

    monkeypatch.setattr(envs, "with_modules", with_modules)
    requirements = user / "requirements.txt"
    requirements.write_text(f"# aifactory: module gcc/12\n{PROBE}=={PROBE_VERSION}\n")
    prefix = envs.create("moduled", requirements, index=offline(user))
    base = envs.site_kernel(envs.DEFAULT_KERNEL).modules
    assert [*base, "gcc/12"] in loaded  # uv pip install ran with them loaded
    spec = json.loads((user / "jupyter" / "kernels" / "moduled" / "kernel.json").read_text())
    assert spec["metadata"]["aifactory"]["modules"] == [*base, "gcc/12"]
    argv = spec["argv"]
    assert argv[argv.index("--module") : argv.index("--")] == [a for m in [*base, "gcc/12"] for a in ("--module", m)]
    assert json.loads((prefix / envs.BUILD_RECORD).read_text())["modules"] == [*base, "gcc/12"]


# Issue 36, item 3: aifactory-env create offline ----------------------------------------------

#: Packages the suite's venv (the site layer here) has: a build that asks for them as the site
#: has them needs no index.
SITE_YAML = f"PyYAML=={importlib.metadata.version('PyYAML')}"


@contextlib.contextmanager
def silent_index() -> Iterator[str]:
    """An index URL whose server takes the connection and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/simple"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_what_the_site_kernel_has_as_asked_is_not_downloaded_and_needs_no_index(user):
    """toolz==1.2.0, which the site kernel has, failed with --offline ("not in the cache"): what
    the site layer satisfies is recorded as the site's (lock and build.json), not installed."""
    requirements = user / "requirements.txt"
    requirements.write_text(f"{SITE_YAML}\njinja2>=3  # the site's too\n{PROBE}=={PROBE_VERSION}\n")
    prefix = envs.create("mixed", requirements, index=["--offline", "--find-links", str(user / "wheels")])
    lock = (prefix / envs.LOCK).read_text().splitlines()
    assert f"aifw-probe=={PROBE_VERSION}" in lock and not any(line.lower().startswith("pyyaml") for line in lock)
    assert f"# {SITE_YAML}: the site's, as the file asked" in lock
    assert json.loads((prefix / envs.BUILD_RECORD).read_text())["from_site"][0] == SITE_YAML
    # Only what the site has: no index is asked at all, not even one that is down.
    requirements.write_text(f"{SITE_YAML}\n")
    prefix = envs.create("site-only", requirements, index=["--index-url", f"http://127.0.0.1:{closed_port()}/simple"])
    assert (
        run_python(str(prefix / "bin" / "python"), "import yaml; print(yaml.__version__)") == SITE_YAML.split("==")[1]
    )
    # A version the site does not have, extras, or a file with options are uv's as before.
    assert envs.provided_by_site(["pyyaml<1", "pyyaml[x]", "pyyaml; os_name == 'nt'", "nope"], {"pyyaml": "6"}) == {}


def no_such_host(getaddrinfo, name: str):
    """``getaddrinfo`` that answers for ``name`` as a resolver does for a name it does not know."""

    def resolve(host, *args, **kwargs):
        if host == name:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return getaddrinfo(host, *args, **kwargs)

    return resolve


@pytest.mark.parametrize("index", ["silent", "refused", "unknown host"])
def test_an_index_that_does_not_answer_is_named_within_seconds_with_what_to_do(user, monkeypatch, index):
    """A plain requirements file, no network: 35 s of silence then uv's raw DNS error before.
    Now within 10 s: which index, why, and what to do (the site's folder of wheels named)."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    requirements = user / "requirements.txt"
    requirements.write_text("aifw-not-in-the-site\n")  # (requests, in the issue: the suite's venv has it)
    with contextlib.ExitStack() as stack:
        url = {
            "silent": lambda: stack.enter_context(silent_index()),
            "refused": lambda: f"http://127.0.0.1:{closed_port()}/simple",
            "unknown host": lambda: "http://aifw-no-such-host.invalid/simple",
        }[index]()
        # No DNS query leaves this machine: the name is not known, as a resolver would answer.
        monkeypatch.setattr(socket, "getaddrinfo", no_such_host(socket.getaddrinfo, "aifw-no-such-host.invalid"))
        monkeypatch.setenv(envs.PACKAGE_INDEX_ENV, f"--index-url {url} --find-links /srv/site-wheels")
        started = time.monotonic()
        with pytest.raises(SystemExit) as failed:
            envs.main(["create", "offline", "--file", str(requirements)])
    said = str(failed.value)
    assert time.monotonic() - started < 10, said
    assert f"the site's package index {url} did not answer" in said
    assert "--no-index --find-links FOLDER (the site's: /srv/site-wheels)" in said and "support" in said
    assert "cause:" not in said and "Traceback" not in said
    assert list((user / "home" / ".aifactory" / "envs").iterdir()) == []


def test_create_installs_from_the_site_index_the_job_names_and_the_command_line_wins(user, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    requirements = user / "requirements.txt"
    requirements.write_text(f"{PROBE}=={PROBE_VERSION}\n")
    site = ["--no-index", "--find-links", str(user / "wheels")]
    monkeypatch.setenv(envs.PACKAGE_INDEX_ENV, " ".join(site))
    assert envs.main(["create", "from-site", "--file", str(requirements)]) == 0  # no option: the site's index
    record = json.loads((envs.existing("from-site", None) / envs.BUILD_RECORD).read_text())
    assert record["index"] == site
    refused = f"http://127.0.0.1:{closed_port()}/simple"
    with pytest.raises(SystemExit, match=rf"the package index {refused} did not answer"):
        envs.main(["create", "own-index", "--file", str(requirements), "--index-url", refused])
    assert envs.with_site_index(
        ["--index-url", "U"], ["--index-url", "S", "--extra-index-url", "E", "--find-links", "F"]
    ) == ["--index-url", "U", "--find-links", "F"]
    assert envs.with_site_index(["--find-links", "G"], site) == ["--find-links", "G", *site]
    monkeypatch.setenv(envs.PACKAGE_INDEX_ENV, "--trusted-host x")
    with pytest.raises(SystemExit, match="AIFACTORY_PACKAGE_INDEX .*--trusted-host"):
        envs.main(["create", "bad", "--file", str(requirements)])


def test_uvs_network_errors_are_told_in_plain_words_with_what_to_do():
    dns = (
        "error: Request failed after 3 retries\n  Caused by: Failed to fetch: `https://pypi.org/simple/requests/`\n"
        "  Caused by: error sending request for url (https://pypi.org/simple/requests/)\n"
        "  Caused by: client error (Connect)\n  Caused by: dns error\n"
    )
    said = envs.network_trouble(dns)
    assert said.startswith("a download failed (https://pypi.org/simple/requests/)") and "--find-links FOLDER" in said
    offline = "  ╰─▶ Because toolz was not found in the cache and you require toolz==1.2.0, we can conclude ...\n"
    assert "with --offline only uv's cache and the --find-links folders" in envs.network_trouble(offline)
    assert envs.network_trouble("error: Failed to build `numpy==2.0.0`\n") is None
