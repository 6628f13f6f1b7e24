"""A kernel on any partition, from the same JupyterLab (issue 39; lab/slurm_kernel.py): from
alice's session on gpp, a notebook's kernel runs on an acc node in a job of her own; no other
tenant on that node reads or drives it; shutting it down, or stopping the session, ends its job."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from .conftest import (
    VENV,
    HubProcess,
    chromium_page,
    execute_in_kernel,
    gpus_held,
    on_node,
    queued_jobs,
    serious_violations,
    sh,
    shot,
    sign_in,
    wait_for,
    wait_for_kernel,
)

KERNEL = "aifactory-acc"
SECRET = "aifw-remote-kernel-secret"

#: In the kernel: where it runs, then the secret printed four times a second for 30 s.
REPORTS = f"""
import os, socket, threading, time
print(socket.gethostname(), os.environ["SLURM_JOB_ID"], os.environ.get("SLURM_JOB_PARTITION"), flush=True)

def leak():
    for _ in range(120):
        print({SECRET!r}, flush=True)
        time.sleep(0.25)

threading.Thread(target=leak, daemon=True).start()
"""

#: A subscriber to the kernel's iopub port, with what its command line says (JSON: url, and the
#: server's public key or null for a plain ZeroMQ peer): "heard" once a message carries the secret.
LISTENS = f"""
import json, sys, time, zmq
said = json.loads(sys.argv[1])
sub = zmq.Context().socket(zmq.SUB)
if said["server_key"]:
    public, secret = zmq.curve_keypair()
    sub.curve_publickey, sub.curve_secretkey = public, secret
    sub.curve_serverkey = said["server_key"].encode()
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.setsockopt(zmq.RCVTIMEO, 500)
sub.connect(said["url"])
deadline = time.monotonic() + 12
while time.monotonic() < deadline:
    try:
        frames = sub.recv_multipart()
    except zmq.Again:
        continue
    if any({SECRET.encode()!r} in frame for frame in frames):
        print("heard", flush=True)
        sys.exit()
print("nothing", flush=True)
"""


def jobs_of(user: str) -> dict[str, dict[str, str]]:
    """Every job of the user's that squeue holds (the session's and its kernels'): id -> name, partition."""
    rows = (line.split("|") for line in sh("squeue", "-h", "-u", user, "-o", "%i|%j|%P").splitlines())
    return {job: {"name": name, "partition": partition} for job, name, partition in rows}


def kernel_jobs_of(user: str) -> list[str]:
    return [job for job, info in jobs_of(user).items() if info["name"].startswith("aifw-kernel-")]


def listen(user: str, node: str, url: str, server_key: str | None) -> subprocess.Popen:
    said = {"url": url, "server_key": server_key}
    listener = subprocess.Popen(
        on_node(node, "sudo", "-u", user, f"{VENV}/bin/python", "-c", LISTENS, json.dumps(said)),
        cwd="/tmp",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return listener


#: Where alice's kernels in jobs of their own keep their connection files and keys.
KERNEL_FOLDERS = Path("/home/alice") / ".aifactory" / "kernels"


def kernel_folders() -> set[Path]:
    return {p for p in KERNEL_FOLDERS.iterdir() if p.is_dir()} if KERNEL_FOLDERS.is_dir() else set()


def kill_job_processes(job: str) -> list[int]:
    """SIGKILL to every process of ``job`` at once (the ones whose environment names it)."""
    killed = []
    for proc in Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if f"SLURM_JOB_ID={job}".encode() in environ:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
    return killed


def remote_kernels(hub: HubProcess, token: str) -> list[str]:
    listed = hub.through_proxy("alice", token, "api/kernels").json()
    return [k["id"] for k in listed if k["name"] == KERNEL]


def test_a_notebooks_kernel_runs_on_another_partition_in_a_job_of_its_own(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")  # on gpp, the site's default
    token = hub.user_token("alice")
    (session_job,) = queued_jobs("alice")
    before = kernel_folders()  # another run's, if a session of alice's ended with a kernel in it
    started = time.monotonic()
    host, job, partition = execute_in_kernel(hub, "alice", token, REPORTS, kernel=KERNEL).split()[:3]
    print(f"FIGURE a kernel on acc, from start to its first output: {time.monotonic() - started:.1f} s")
    assert (host, partition) == ("mn5-a01", "acc") and job != session_job
    jobs = jobs_of("alice")
    assert set(jobs) == {session_job, job}, jobs
    assert jobs[job] == {"name": f"aifw-kernel-{session_job}", "partition": "acc"}, jobs

    # No other tenant on its node reads it: its ports speak CurveZMQ with keys only alice's
    # connection file holds. alice, with them, hears what bob, with or without a key of his
    # own making, cannot.
    (folder,) = kernel_folders() - before
    assert folder.stat().st_mode & 0o777 == 0o700
    info = json.loads((folder / "connection.json").read_text())
    url = f"tcp://{info['ip']}:{info['iopub_port']}"
    listeners = {
        "alice": listen("alice", "mn5-a01", url, info["curve_publickey"]),
        "bob, plain": listen("bob", "mn5-a01", url, None),
        "bob, a key of his own": listen("bob", "mn5-a01", url, "x" * 40),
    }
    said = {who: p.communicate(timeout=60)[0].strip() for who, p in listeners.items()}
    assert said == {"alice": "heard", "bob, plain": "nothing", "bob, a key of his own": "nothing"}, said

    # alice's home page lists the kernel's job on her session's card while it runs: its partition,
    # its node, its time left and what it holds, in the hub's words (hub/operator.py).
    with chromium_page(*hub.chromium_args) as page:
        sign_in(page, hub, "alice")
        card = f".aifw-session[data-job='{session_job}']"
        item = page.wait_for_selector(f"{card} .aifw-kernel[data-job='{job}']", timeout=60_000)
        assert item.get_attribute("data-partition") == "acc" and item.get_attribute("data-state") == "running"
        text = item.inner_text()
        assert text.startswith(f"Kernel job {job} on acc (mn5-a01): running, ") and " left; " in text, text
        assert "1 GPU" in text, text
        assert page.is_visible(f"{card} .aifw-kernels-box"), "the kernels' list is hidden"
        assert serious_violations(page) == [], "home with a kernel's job"
        shot(page, "39-home-kernel-job")

    # Shutting the kernel down ends its job within 30 s, and its keys go with it.
    (kernel_id,) = remote_kernels(hub, token)
    r = requests.delete(
        f"{hub.user_url('alice')}api/kernels/{kernel_id}",
        headers={"Authorization": f"token {token}"},
        timeout=60,
        verify=hub.verify,
    )
    assert r.status_code == 204, r.text
    wait_for(lambda: job not in jobs_of("alice"), 30, "the kernel's job ended", every=1)
    assert not folder.exists(), "the kernel's keys outlived it"
    assert session_job in jobs_of("alice"), "the session went with its kernel"


def test_a_kernels_job_ends_with_the_session(clean: HubProcess):
    hub = clean
    hub.start_ready("alice")
    token = hub.user_token("alice")
    before = kernel_folders()
    execute_in_kernel(hub, "alice", token, "print(1)", kernel=KERNEL)
    assert any(j["name"].startswith("aifw-kernel-") for j in jobs_of("alice").values()), jobs_of("alice")
    (folder,) = kernel_folders() - before
    hub.stop("alice")
    wait_for(lambda: not jobs_of("alice"), 60, "the session's kernel job ended with it", every=1)
    assert "aifw-kernel-" in sh("sacct", "-X", "-n", "-u", "alice", "-S", "now-10minutes", "-o", "JobName%40")
    assert not folder.exists(), "the kernel's keys outlived its session"


def test_a_session_killed_outright_takes_its_kernels_job_and_keys_with_it(clean: HubProcess):
    """A node's failure or an OOM kill ends the session with no word to its server: the kernel's
    job still sees the session gone and ends, and its folder (connection file, keys) with it."""
    hub = clean
    hub.start_ready("alice")
    token = hub.user_token("alice")
    (session_job,) = queued_jobs("alice")
    before = kernel_folders()
    execute_in_kernel(hub, "alice", token, "print(1)", kernel=KERNEL)
    (folder,) = kernel_folders() - before
    killed = kill_job_processes(session_job)  # no word to its server, as an OOM kill or a crash
    assert killed, f"no process of job {session_job} found"
    wait_for(lambda: not jobs_of("alice"), 90, "the kernel's job ended with its killed session", every=1)
    wait_for(lambda: not folder.exists(), 10, "the kernel's folder removed by its job's end", every=0.5)


def test_a_kernels_job_slurm_ends_is_told_in_the_notebook_and_restarted_once(clean: HubProcess):
    """An operator cancels the kernel's job (as its walltime or its node's failure would end it):
    alice's JupyterLab's session answer says how the job ended, in accounting's words (her pages
    tell it once), and the kernel is restarted once, in a new job of its own."""
    hub = clean
    hub.start_ready("alice")
    token = hub.user_token("alice")
    execute_in_kernel(hub, "alice", token, "print(1)", kernel=KERNEL)
    (job,) = kernel_jobs_of("alice")
    sh("scancel", job)

    def told() -> list[dict]:
        kernels = hub.through_proxy("alice", token, "aifactory/session").json()["kernels"]
        return [k for k in kernels if k["job_id"] == job and k["notice"]]

    (entry,) = wait_for(told, 60, "the session answer tells how the kernel's job ended", every=1)
    assert entry["state"] == "ended" and entry["notice"] == (
        f"The kernel's job {job} on acc ended: it was cancelled. Its variables are gone; a restart runs in a new job."
    ), entry
    (again,) = wait_for(lambda: kernel_jobs_of("alice"), 60, "the kernel restarted in a new job", every=1)
    assert again != job


def test_a_kernel_waiting_for_its_partition_says_why_and_alice_cancels_it(clean: HubProcess):
    """bob holds both GPUs of the acc node: alice's acc kernel waits. While it does, her session
    answer lists its job, queued, with SLURM's reason and a Cancel route; cancelling ends the
    start with a message that says so, and leaves no job. bob may not cancel it."""
    hub = clean
    hub.start_ready("alice")
    token = hub.user_token("alice")
    before = kernel_folders()
    with gpus_held("bob", 2), ThreadPoolExecutor(1) as pool:
        start = pool.submit(
            requests.post,
            hub.user_url("alice") + "api/kernels",
            json={"name": KERNEL},
            headers={"Authorization": f"token {token}"},
            timeout=60,
            verify=hub.verify,
        )

        def waiting() -> list[dict]:
            kernels = hub.through_proxy("alice", token, "aifactory/session").json()["kernels"]
            return [k for k in kernels if k["cancel"]]

        (entry,) = wait_for(waiting, 60, "the waiting kernel's job in the session answer", every=1)
        assert entry["state"] == "queued" and entry["detail"].startswith("waiting "), entry  # SLURM's reason, in words
        (job,) = kernel_jobs_of("alice")
        assert entry["job_id"] == job and entry["cancel"] == f"aifactory/session/kernel-jobs/{job}"
        cancel = hub.user_url("alice") + entry["cancel"]
        bobs = requests.delete(
            cancel, headers={"Authorization": f"token {hub.user_token('bob')}"}, timeout=30, verify=hub.verify
        )
        assert bobs.status_code in (403, 404) and kernel_jobs_of("alice") == [job], bobs.status_code
        r = requests.delete(cancel, headers={"Authorization": f"token {token}"}, timeout=30, verify=hub.verify)
        assert r.status_code == 200, r.text
        refused = start.result(timeout=60)
        assert refused.status_code == 503 and f"You cancelled the kernel's job {job} on acc" in refused.text, (
            refused.status_code,
            refused.text,
        )
    wait_for(lambda: not kernel_jobs_of("alice"), 30, "no kernel job left", every=1)
    assert kernel_folders() == before, "the cancelled start left its keys"


def leave_no_layout(page, hub: HubProcess) -> None:
    """JupyterLab keeps alice's open tabs for her next visit: a notebook left without a kernel
    greets the next test's page with a Select Kernel dialog. An empty layout instead."""
    page.goto(f"{hub.user_url('alice')}lab?reset")
    page.wait_for_selector(".jp-LauncherCard", timeout=60_000)


@contextlib.contextmanager
def alices_kernelspec(name: str, config: dict) -> Iterator[str]:
    """A kernelspec of alice's own (in her home, as a user may write one) whose provisioner is
    aifactory-slurm with ``config``; removed after."""
    spec = Path("/home/alice/.local/share/jupyter/kernels") / name
    sh("sudo", "-u", "alice", "mkdir", "-p", str(spec))
    kernelspec = {
        "display_name": f"Python, {name}",
        "language": "python",
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "metadata": {"kernel_provisioner": {"provisioner_name": "aifactory-slurm", "config": config}},
    }
    subprocess.run(
        ["sudo", "-u", "alice", "tee", str(spec / "kernel.json")],
        input=json.dumps(kernelspec),
        text=True,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    try:
        yield name
    finally:
        sh("rm", "-rf", str(spec))


def test_a_kernel_left_idle_with_its_notebook_closed_ends_its_job(clean: HubProcess):
    """The GPU only while a notebook needs it: a kernel in a job of its own, idle with no
    notebook connected for longer than its kernelspec's idle_timeout (here alice's own, 5 s), is
    shut down and its job cancelled."""
    hub = clean
    config = {"partition": "acc", "cpus": 1, "memory": "1G", "walltime": "00:30:00", "idle_timeout": 5}
    with alices_kernelspec("aifw-test-acc-idle", config) as kernel:
        hub.start_ready("alice")
        token = hub.user_token("alice")
        execute_in_kernel(hub, "alice", token, "print(1)", kernel=kernel)  # then its socket closes
        (job,) = [j for j, info in jobs_of("alice").items() if info["partition"] == "acc"]
        t0 = time.monotonic()
        wait_for(lambda: job not in jobs_of("alice"), 60, "the idle kernel's job cancelled", every=1)
        print(f"FIGURE an idle kernel's job cancelled {time.monotonic() - t0:.1f} s after its last output")
        listed = lambda: hub.through_proxy("alice", token, "api/kernels").json()  # noqa: E731
        wait_for(lambda: listed() == [], 30, "the culled kernel no longer listed")


def test_a_kernelspec_asking_what_is_refused_is_told_in_words_and_submits_nothing(clean: HubProcess):
    """A kernelspec edited by hand: a misspelt setting, and more GPUs than any node has. Each
    start is refused with words JupyterLab shows (not "Unhandled error"), and no job is left."""
    hub = clean
    hub.start_ready("alice")
    token = hub.user_token("alice")
    before = kernel_folders()
    misspelt = {"partition": "acc", "memroy": "1G"}
    too_many = {"partition": "acc", "gpus": 9, "walltime": "00:10:00"}
    with alices_kernelspec("aifw-test-misspelt", misspelt) as one, alices_kernelspec("aifw-test-nine", too_many) as two:
        said = {}
        for kernel in (one, two):
            r = requests.post(
                hub.user_url("alice") + "api/kernels",
                json={"name": kernel},
                headers={"Authorization": f"token {token}"},
                timeout=60,
                verify=hub.verify,
            )
            said[kernel] = (r.status_code, r.json()["message"])
    assert said[one] == (400, "kernelspec aifactory-slurm settings: 'memroy' is not a setting (did you mean 'memory'?)")
    status, message = said[two]
    assert status == 503 and message.startswith("SLURM refused the kernel's job on acc: "), said[two]
    assert kernel_jobs_of("alice") == [] and kernel_folders() == before, "a refused start left a job or its keys"


def test_a_newcomer_picks_the_gpu_kernel_in_the_launcher_and_its_cells_run_on_acc(demo_module_hub: HubProcess):
    """Walked in Chromium in the demo's setup: from her JupyterLab on gpp, alice clicks the acc
    kernel's card in the Launcher; once its job runs, her cell runs on
    the acc node; Kernel › Shut Down Kernel ends its job."""
    hub = demo_module_hub
    hub.start_ready("alice")
    (session_job,) = queued_jobs("alice")
    try:
        with chromium_page(*hub.chromium_args) as page:
            sign_in(page, hub, "alice")
            page.goto(f"{hub.user_url('alice')}lab?reset")
            card = page.locator(".jp-LauncherCard:has-text('on acc, 1 GPU')").first
            card.wait_for(timeout=120_000)
            card.click()
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            wait_for_kernel(page, timeout=300)
            page.click(".jp-Notebook .jp-Cell .jp-InputArea-editor")
            page.keyboard.type("import os, socket; print(socket.gethostname(), os.environ['SLURM_JOB_PARTITION'])")
            page.keyboard.press("Shift+Enter")
            page.wait_for_selector(".jp-OutputArea-output:has-text('mn5-a01 acc')", timeout=120_000)
            kernel_jobs = [j for j, info in jobs_of("alice").items() if info["partition"] == "acc"]
            assert len(kernel_jobs) == 1 and session_job in jobs_of("alice"), jobs_of("alice")
            # The status bar shows the kernel's job and its time left beside the session's (its next poll).
            kernel_status = page.wait_for_selector(
                f".aifw-kernel-status:has-text('Kernel: job {kernel_jobs[0]} on acc')", timeout=30_000
            )
            assert " left" in kernel_status.inner_text(), kernel_status.inner_text()
            title = kernel_status.get_attribute("title") or ""
            assert "(node mn5-a01)" in title, title
            assert f"Job {session_job} " in page.inner_text(".aifw-session-status"), "the session's job beside it"
            assert serious_violations(page, within=".aifw-kernel-status") == [], "the kernel's status item"
            shot(page, "39-kernel-on-acc")

            # SLURM ends the kernel's job (an operator here; its walltime or its node alike): the
            # notebook tells how, once, and JupyterLab restarts the kernel once, in a new job.
            sh("scancel", kernel_jobs[0])
            ended = f"job {kernel_jobs[0]} on acc ended"
            toast = page.wait_for_selector(f".Toastify__toast:has-text('{ended}')", timeout=60_000)
            assert "it was cancelled" in toast.inner_text(), toast.inner_text()
            again = wait_for(lambda: kernel_jobs_of("alice"), 60, "the kernel restarted in a new job", every=1)
            assert again != kernel_jobs, again
            dialog = page.wait_for_selector(".jp-Dialog:has-text('restart automatically')", timeout=30_000)
            page.wait_for_timeout(1000)  # the notice slides in
            shot(page, "39-kernel-job-ended")
            dialog.query_selector(".jp-Dialog-button.jp-mod-accept").click()
            wait_for_kernel(page, timeout=300)
            page.click(".jp-Notebook .jp-Cell .jp-InputArea-editor >> nth=-1")
            page.keyboard.type("import socket; print('again on', socket.gethostname())")
            page.keyboard.press("Shift+Enter")
            page.wait_for_selector(".jp-OutputArea-output:has-text('again on mn5-a01')", timeout=120_000)
            page.wait_for_selector(f".aifw-kernel-status:has-text('Kernel: job {again[0]} on acc')", timeout=30_000)
            page.click(".lm-MenuBar-itemLabel:text-is('Kernel')")
            page.click(".lm-Menu-itemLabel:text-is('Shut Down Kernel')")
            wait_for(lambda: again[0] not in jobs_of("alice"), 30, "the kernel's job ended", every=1)
            leave_no_layout(page, hub)
    finally:
        hub.stop("alice")


def test_a_newcomer_sees_the_gpu_kernel_wait_and_cancels_it_from_the_status_bar(demo_module_hub: HubProcess):
    """Walked in Chromium in the demo's setup: both of the acc node's GPUs are bob's, so alice's
    acc kernel waits; her status bar says so, with SLURM's reason in its tooltip, and its Cancel
    ends the wait: JupyterLab says she cancelled it, and no job is left."""
    hub = demo_module_hub
    hub.start_ready("alice")
    try:
        with gpus_held("bob", 2), chromium_page(*hub.chromium_args) as page:
            sign_in(page, hub, "alice")
            page.goto(f"{hub.user_url('alice')}lab?reset")
            card = page.locator(".jp-LauncherCard:has-text('on acc, 1 GPU')").first
            card.wait_for(timeout=120_000)
            card.click()
            item = page.wait_for_selector(".aifw-kernel-status:has-text('· queued')", timeout=60_000)
            (job,) = kernel_jobs_of("alice")
            assert item.inner_text() == f"Kernel: job {job} on acc · queued", item.inner_text()
            assert "State: queued — waiting " in (item.get_attribute("title") or "")
            assert serious_violations(page, within=".jp-StatusBar-Widget") == [], "the waiting kernel's status"
            shot(page, "39-kernel-waiting")
            page.click("button.aifw-kernel-cancel")
            dialog = page.wait_for_selector(".jp-Dialog:has-text('You cancelled the kernel')", timeout=30_000)
            assert f"job {job} on acc: nothing is left" in dialog.inner_text(), dialog.inner_text()
            shot(page, "39-kernel-cancelled")
            wait_for(lambda: not kernel_jobs_of("alice"), 30, "no kernel job left", every=1)
            leave_no_layout(page, hub)
    finally:
        hub.stop("alice")
