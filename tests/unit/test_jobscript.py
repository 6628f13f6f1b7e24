"""The rendered batch script, and that no user string can change its shape."""

import re
import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aifactory_workbench.slurm.values import SiteHooks
from aifactory_workbench.spawners.jobscript import USER_OPTIONS, OptionError, SessionTimes, render

from .defaults import JOB, request

COMMAND = ["/opt/aifactory/venv/bin/aifactory-singleuser", "/opt/aifactory/venv/bin/jupyterhub-singleuser"]
ENV = ["JUPYTERHUB_API_TOKEN", "PATH", "HOME"]
NO_HOOKS = SiteHooks()


def script_for(options=None, user="alice", home="/home/alice"):
    return render(request(options, user, home), COMMAND, ENV)


def directives(script):
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def test_defaults_render_the_expected_directives():
    assert directives(script_for()) == [
        "#SBATCH --job-name=aifw-jupyterlab",
        "#SBATCH --output=/home/alice/.aifactory-jupyterlab-%j.log",
        "#SBATCH --chdir=/home/alice",
        "#SBATCH --partition=gpp",
        "#SBATCH --qos=interactive",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=2G",
        "#SBATCH --time=02:00:00",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        "#SBATCH --no-requeue",
        "#SBATCH --signal=B:USR2@300",
        "#SBATCH --export=HOME,JUPYTERHUB_API_TOKEN,PATH",
    ]
    assert " ".join(COMMAND) + " &" in script_for().splitlines()
    assert 'export DASK_JOBQUEUE__SLURM__NAME="aifw-dask-$SLURM_JOB_ID"' in script_for()


def test_options_change_only_their_directives():
    script = script_for({"partition": "acc", "cpus": 4, "memory": "8G", "walltime": "1-00:00:00"})
    assert "#SBATCH --partition=acc" in script and "#SBATCH --cpus-per-task=4" in script
    assert "#SBATCH --mem=8G" in script and "#SBATCH --time=1-00:00:00" in script


def test_gpus_and_reservation_appear_only_when_asked_for():
    assert "--gres" not in script_for() and "--reservation" not in script_for()
    script = script_for({"partition": "acc", "gpus": 1, "reservation": "workshop-1"})
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH --reservation=workshop-1" in script


def test_account_appears_only_when_set():
    assert "--account" not in script_for()
    from dataclasses import replace

    bobs = request(user="bob", home="/home/bob", job=replace(JOB, account="ehpc02"))
    assert "#SBATCH --account=ehpc02" in render(bobs, COMMAND, ENV)


def test_unknown_options_are_refused_by_name():
    with pytest.raises(OptionError, match="prologue: 'rm -rf /' is not accepted; allowed: one of the options"):
        script_for({"prologue": "rm -rf /"})


hostile = st.one_of(
    st.text(),
    st.sampled_from(["gpp\n#SBATCH --uid=0", "gpp; id", "$(id)", "`id`", "1G\n", "99999999999999999999", "🚀", "-1"]),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.text(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(USER_OPTIONS), value=hostile)
def test_hostile_values_are_refused_or_harmless(name, value):
    """Whatever is thrown at a field, the script keeps its shape or the request is refused."""
    try:
        script = script_for({name: value})
    except OptionError as e:
        assert name in str(e)
        return
    # Optional directives (qos, account, reservation, gres) may come or go; nothing else changes.
    other_lines = [line for line in script.splitlines() if not line.startswith("#SBATCH")]
    assert other_lines == [line for line in script_for().splitlines() if not line.startswith("#SBATCH")]
    keys = [line.split("=")[0] for line in directives(script)]
    assert len(keys) == len(set(keys))
    for line in directives(script):
        assert re.fullmatch(r"#SBATCH --[a-z-]+=[A-Za-z0-9_.,:%/@-]+|#SBATCH --no-requeue", line), line


@pytest.mark.parametrize("user", ["root;id", "Alice", "a b", ""])
def test_odd_user_names_are_refused(user):
    with pytest.raises(OptionError):
        script_for(user=user)


@pytest.mark.parametrize("home", ["relative", "/home/../etc", "/home/a\n#SBATCH --x"])
def test_odd_home_directories_are_refused(home):
    with pytest.raises(OptionError):
        script_for(home=home)


def test_environment_names_are_checked():
    with pytest.raises(OptionError, match="environment"):
        render(request(), COMMAND, ["OK", "BAD;NAME"])


PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASC\nAT8wggE7AgEAAkEAq7BFUpkGp3+Z==\n"
    "-----END PRIVATE KEY-----\n"
)


def test_internal_ssl_certs_are_written_by_the_job_into_a_private_folder():
    certs = {"keyfile": PEM, "certfile": PEM.replace("PRIVATE KEY", "CERTIFICATE"), "cafile": PEM}
    script = render(request(), COMMAND, ENV, certs=certs)
    assert '(umask 077 && mkdir "$AIFW_PRIVATE/certs"' in script
    assert script.count("<<'AIFW_PEM'") == 3 and "MIIBVQIBADANBgkqhkiG9w0BAQEFAASC" in script
    assert 'export JUPYTERHUB_SSL_KEYFILE="$AIFW_PRIVATE/certs/keyfile.pem"' in script
    assert "certs" not in script_for()  # without internal_ssl, nothing of it


@pytest.mark.parametrize(
    "bad",
    [
        PEM + "AIFW_PEM\nid\n",
        PEM.replace("MIIB", "$(id)"),
        "not a pem",
        PEM + "-----BEGIN X-----\n`id`\n-----END X-----",
    ],
)
def test_anything_but_pem_blocks_is_refused_as_a_certificate(bad):
    certs = {"keyfile": bad, "certfile": PEM, "cafile": PEM}
    with pytest.raises(OptionError, match="certs"):
        render(request(), COMMAND, ENV, certs=certs)


def run_script(tmp_path, command, certs=None, signal_after=None, path="/usr/bin:/bin", site=NO_HOOKS):
    """Run the rendered script in bash as SLURM would (its #SBATCH lines are comments)."""
    import os
    import signal
    import subprocess
    import time

    script = render(request(home=str(tmp_path)), command, ENV, certs=certs, site=site)
    env = {
        "PATH": path,
        "HOME": str(tmp_path),
        "USER": "alice",
        "TMPDIR": str(tmp_path / "tmp"),
        "SLURM_JOB_ID": "4242",
    }
    (tmp_path / "tmp").mkdir(exist_ok=True)
    proc = subprocess.Popen(["bash", "-c", script], env=env, cwd=tmp_path)
    if signal_after is not None:
        time.sleep(signal_after)
        os.kill(proc.pid, signal.SIGTERM)
    return proc.wait(30)


def test_the_job_works_in_a_fresh_private_folder_and_removes_it_at_the_end(tmp_path):
    certs = {"keyfile": PEM, "certfile": PEM.replace("PRIVATE KEY", "CERTIFICATE"), "cafile": PEM}
    probe = 'stat -c "%a %U" "$TMPDIR" > ~/seen; ls "$TMPDIR/certs" >> ~/seen; echo "$TMPDIR" >> ~/seen'
    assert run_script(tmp_path, ["/bin/sh", "-c", probe], certs=certs) == 0
    mode, _, files = (tmp_path / "seen").read_text().partition("\n")
    assert mode.split()[0] == "700" and files.split()[:3] == ["cafile.pem", "certfile.pem", "keyfile.pem"]
    folder = files.split()[-1]
    assert folder.startswith(str(tmp_path / "tmp" / "aifw-job-4242.")) and len(folder.rsplit(".", 1)[1]) == 10
    assert not list((tmp_path / "tmp").iterdir()), "the private folder outlived the job"


def test_a_folder_planted_under_the_old_predictable_name_gets_nothing(tmp_path):
    """Another user used to pre-create /tmp/aifw-certs-<next job id> and collect the keys."""
    planted = tmp_path / "tmp" / "aifw-certs-4242"
    planted.mkdir(parents=True)
    (planted / "keyfile.pem").touch()
    certs = {"keyfile": PEM, "certfile": PEM.replace("PRIVATE KEY", "CERTIFICATE"), "cafile": PEM}
    assert run_script(tmp_path, ["/bin/true"], certs=certs) == 0
    assert (planted / "keyfile.pem").read_text() == "" and list((tmp_path / "tmp").iterdir()) == [planted]


def test_the_folder_is_removed_when_slurm_ends_the_job(tmp_path):
    assert run_script(tmp_path, ["/bin/sleep", "30"], signal_after=1.0) != 0
    assert not list((tmp_path / "tmp").iterdir())


def fake_squeue(tmp_path, answer: str | None) -> str:
    """A PATH whose squeue lists ``answer`` (its job ids) and notes how it was asked; with None,
    SLURM does not answer."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    said = f"cat <<'EOF'\n{answer}\nEOF" if answer is not None else "echo 'slurm_load_jobs error' >&2; exit 1"
    (bin_dir / "squeue").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/asked\n{said}\n')
    (bin_dir / "squeue").chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def leftovers(tmp_path):
    """What killed jobs (SIGKILL: no trap ran) left, and what is not theirs to sweep."""
    import os

    made = {}
    for name in ("aifw-job-100.AbCdEf1234", "aifw-job-200.AbCdEf1234", "aifw-job-300x.AbCdEf1234"):
        made[name] = tmp_path / "tmp" / name
    for name in ("job-100.AbCdEf1234", "job-200.AbCdEf1234"):
        made[name] = tmp_path / ".aifactory" / "dask-tls" / name
    for folder in made.values():
        folder.mkdir(parents=True)
        (folder / "keyfile.pem").write_text("key")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "kept").write_text("kept")
    (tmp_path / "tmp" / "aifw-job-101.AbCdEf1234").symlink_to(target)
    if os.geteuid() == 0:  # another user's folder (root may make one for the test)
        made["other"] = tmp_path / "tmp" / "aifw-job-102.AbCdEf1234"
        made["other"].mkdir()
        os.chown(made["other"], 65534, 65534)
    return made, target


def test_a_new_job_sweeps_what_its_users_killed_jobs_left_and_nothing_else(tmp_path):
    """Issue 34, hole 5: a job SLURM killed (SIGKILL) kept its private folder, with its TLS key,
    in /tmp, and its Dask credentials in the home. The user's next job removes her own leftovers
    of jobs SLURM no longer lists, asking SLURM once; a listed job's folders, another user's
    folder, a link (and where it leads) and what is not named as a job's stay."""
    made, target = leftovers(tmp_path)
    (tmp_path / "tmp").chmod(0o1777)
    path = fake_squeue(tmp_path, "200\n4242")
    assert run_script(tmp_path, ["/bin/true"], path=path) == 0
    gone = {name for name, folder in made.items() if not folder.exists()}
    assert gone == {"aifw-job-100.AbCdEf1234", "job-100.AbCdEf1234"}, gone
    assert (tmp_path / "tmp" / "aifw-job-101.AbCdEf1234").is_symlink() and (target / "kept").exists()
    (asked,) = (tmp_path / "asked").read_text().splitlines()
    assert asked.split()[:1] == ["-h"] and "-u" in asked.split()


def test_nothing_is_swept_when_slurm_does_not_answer(tmp_path):
    made, _ = leftovers(tmp_path)
    assert run_script(tmp_path, ["/bin/true"], path=fake_squeue(tmp_path, None)) == 0
    assert all(folder.exists() for folder in made.values())


def test_the_save_signal_and_the_warnings_follow_the_site_and_the_log_moves_to_one_folder():
    script = render(request(), COMMAND, ENV, times=SessionTimes((30, 10, 2), 120))
    assert "#SBATCH --signal=B:USR2@120" in directives(script)
    assert 'export AIFACTORY_WARN_MINUTES="30 10 2" AIFACTORY_SAVE_BEFORE_END="120"' in script
    assert "trap 'echo" in script and 'kill -USR2 "$server"' in script
    # SLURM opens the log in the home; the job moves it (the open file follows) into ~/.aifactory/logs.
    assert (
        'mv -f "/home/alice/.aifactory-jupyterlab-$SLURM_JOB_ID.log" '
        '"/home/alice/.aifactory/logs/jupyterlab-$SLURM_JOB_ID.log"' in script
    )
    no_signal = render(request(), COMMAND, ENV, times=SessionTimes((5,), 0))
    assert not any(d.startswith("#SBATCH --signal") for d in directives(no_signal))


def test_what_the_user_makes_in_the_job_is_theirs_alone(tmp_path):
    """Issue 21, hole 8: ~/.jupyter_ystore.db and the notebooks used to be 0644 in 0755 folders."""
    probe = 'touch ~/made.txt; mkdir ~/made; stat -c "%a" ~/made.txt ~/made > ~/seen'
    assert run_script(tmp_path, ["/bin/sh", "-c", probe]) == 0
    assert (tmp_path / "seen").read_text().split() == ["600", "700"]


def test_the_dask_credentials_folder_is_the_jobs_own_on_the_home_and_removed_at_the_end(tmp_path):
    probe = 'stat -c "%a %U" "$AIFACTORY_DASK_TLS" > ~/seen; echo "$AIFACTORY_DASK_TLS" >> ~/seen'
    assert run_script(tmp_path, ["/bin/sh", "-c", probe]) == 0
    mode, folder = (tmp_path / "seen").read_text().splitlines()
    assert mode.split()[0] == "700" and folder.startswith(str(tmp_path / ".aifactory" / "dask-tls" / "job-4242."))
    assert not list((tmp_path / ".aifactory" / "dask-tls").iterdir()), "the credentials outlived the job"


def test_a_constraint_asks_for_node_features_and_nothing_else_passes():
    assert "#SBATCH --constraint=highmem&ssd" in directives(script_for({"constraint": "highmem&ssd"}))
    assert not [d for d in directives(script_for()) if "--constraint" in d], "no constraint: any node"
    for bad in ("highmem ssd", "highmem\n#SBATCH --uid=0", "[a*2]", "a&&b"):
        with pytest.raises(OptionError, match="constraint"):
            script_for({"constraint": bad})


#: Debian's Lmod, and the mini cluster's demo module (cluster/modules, in /etc/lmod/modules).
LMOD = "/usr/share/lmod/lmod/init/profile"


def test_the_sites_commands_run_before_jupyterlab_as_written_and_what_they_set_reaches_it(tmp_path):
    """Issue 35, item 7: a site's `module load` (real Lmod) and its own variables, before
    JupyterLab, in every job."""
    site = SiteHooks(("module load climate-tools/1.0", "export AIFW_SITE_HOOK=ran"), LMOD)
    probe = 'echo "$CLIMATE_TOOLS_VERSION $AIFW_SITE_HOOK $AIFACTORY_LMOD_INIT" > ~/seen'
    assert run_script(tmp_path, ["/bin/sh", "-c", probe], site=site) == 0
    assert (tmp_path / "seen").read_text().split() == ["1.0", "ran", LMOD]
    script = render(request(), COMMAND, ENV, site=site)
    assert "\nmodule load climate-tools/1.0 || {" in script and "\nexport AIFW_SITE_HOOK=ran || {" in script
    assert script.index("module load") < script.index(shlex.join(COMMAND) + " &")


def test_a_failing_site_command_stops_the_job_before_jupyterlab_and_says_which(tmp_path, capfd):
    site = SiteHooks(("module load no-such-module/9", "export AIFW_AFTER=yes"), LMOD)
    assert run_script(tmp_path, ["/bin/sh", "-c", "touch ~/started"], site=site) == 1
    said = capfd.readouterr().err
    assert "the site's command before JupyterLab failed" in said and "module load no-such-module/9" in said, said
    assert not (tmp_path / "started").exists()
    assert not list((tmp_path / "tmp").iterdir()), "the private folder outlived the job"


def test_without_site_commands_nothing_is_added_and_lmod_is_named_to_kernels_only():
    script = render(request(), COMMAND, ENV, site=SiteHooks((), LMOD))
    assert "set +eu" not in script and f"source {LMOD}" not in script
    assert f"export AIFACTORY_LMOD_INIT={LMOD}\n" in script and 'export AIFACTORY_PORT_RANGE=""\n' in script
    assert "AIFACTORY_LMOD_INIT" not in render(request(), COMMAND, ENV)


def test_lmod_is_sourced_only_before_a_module_command():
    script = render(request(), COMMAND, ENV, site=SiteHooks(("source /etc/site/job.sh",), LMOD))
    assert "\nsource /etc/site/job.sh || {" in script and f"source {LMOD}" not in script


def test_the_port_range_reaches_the_launcher():
    script = render(request(), COMMAND, ENV, site=SiteHooks(port_range=(50000, 50099)))
    assert 'export AIFACTORY_PORT_RANGE="50000-50099"\n' in script


def test_the_sites_package_index_reaches_the_job_as_one_variable_of_uvs_options():
    """Issue 36, item 3: aifactory-env create in the job installs from the site's index by default."""
    index = ["--no-index", "--find-links", "/srv/aifactory/wheels", "--find-links", "/srv/it's wheels"]
    script = render(request(), COMMAND, ENV, package_index=index)
    [line] = [line for line in script.splitlines() if "AIFACTORY_PACKAGE_INDEX=" in line]
    said = subprocess.run(
        ["bash", "-c", f'{line}; printf "%s" "$AIFACTORY_PACKAGE_INDEX"'], capture_output=True, text=True
    )
    assert shlex.split(said.stdout) == index
    assert "export AIFACTORY_PACKAGE_INDEX=''\n" in render(request(), COMMAND, ENV)
    for refused in (["--trusted-host", "x"], ["--index-url"], ["--find-links", "/a\nrm -rf ~"], ["--index-url", "-x"]):
        with pytest.raises(OptionError, match="package_index"):
            render(request(), COMMAND, ENV, package_index=refused)


@pytest.mark.parametrize(
    "command",
    [
        "module load x; rm -rf ~",
        "module load x && id",
        "module load x | tee y",
        "echo $HOME",
        "echo `id`",
        "echo $(id)",
        "cat > /etc/passwd",
        "module load 'a b'",
        'module load "x"',
        "module load x\nid",
        "module load *",
        "-x",
        "",
        "   ",
        "x" * 501,
    ],
)
def test_a_site_command_that_is_more_than_plain_words_is_refused(command):
    with pytest.raises(OptionError) as refused:
        render(request(), COMMAND, ENV, site=SiteHooks((command,), LMOD))
    assert refused.value.field == "prologue"


@pytest.mark.parametrize(
    ("site", "field"),
    [
        (SiteHooks(("module load x",), ""), "lmod_init"),
        (SiteHooks(("ml x",), ""), "lmod_init"),
        (SiteHooks((), "lmod/init"), "lmod_init"),
        (SiteHooks((), "/usr/../etc/x"), "lmod_init"),
        (SiteHooks((), "/x y"), "lmod_init"),
        (SiteHooks(port_range=(80, 90)), "port_range"),
        (SiteHooks(port_range=(9000, 8000)), "port_range"),
        (SiteHooks(port_range=(50000,)), "port_range"),
        (SiteHooks(port_range=(50000, 70000)), "port_range"),
    ],
)
def test_odd_lmod_paths_and_port_ranges_are_refused(site, field):
    with pytest.raises(OptionError) as refused:
        render(request(), COMMAND, ENV, site=site)
    assert refused.value.field == field
