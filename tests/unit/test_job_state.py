"""Issue 24, item 3: what the hub keeps of a job across its restarts is one versioned record
(spawners/job_state.py), which also reads the loose keys of the state written before it."""

import pytest

from aifactory_workbench.spawners.job_state import STATE_VERSION, JobState, StateVersionError

from .fakes import new_spawner

#: A running server's state as the release before the record wrote it (from a hub's database).
VERSION_1_RUNNING = {
    "job_id": "4711",
    "job_status": "",
    "submitted_at": 1796390000.5,
    "started": True,
    "token_sha256": "ab" * 32,
    "port": 41367,
    "ip": "10.77.0.11",
    "log_path": "/home/alice/.aifactory/logs/jupyterlab-%j.log",
    "accepted_options": {"cpus": 2},
}
#: Older still: written before "started" existed (such a job had started).
VERSION_1_WITHOUT_STARTED = {"job_id": "17", "submitted_at": 1.0, "port": 8888, "ip": "10.77.0.12"}
#: A stopped server's: no job, only why the last one ended.
VERSION_1_ENDED = {"last_end": "Your JupyterLab job 16 has ended: walltime.", "last_log": "/home/alice/x.log"}


def test_a_version_1_state_is_read_whole():
    record = JobState.from_state(VERSION_1_RUNNING)
    assert (record.job_id, record.started, record.port, record.ip) == ("4711", True, 41367, "10.77.0.11")
    assert record.submitted_at == 1796390000.5 and record.accepted_options == {"cpus": 2}
    assert JobState.from_state(VERSION_1_WITHOUT_STARTED).started is True, "before the key: it had started"
    ended = JobState.from_state(VERSION_1_ENDED)
    assert (ended.job_id, ended.last_end, ended.started) == ("", VERSION_1_ENDED["last_end"], False)


def test_the_record_is_written_with_its_version_and_read_back_the_same():
    for old in (VERSION_1_RUNNING, VERSION_1_WITHOUT_STARTED, VERSION_1_ENDED):
        record = JobState.from_state(old)
        written = record.as_state()
        assert written["version"] == STATE_VERSION
        assert JobState.from_state(written) == record
    assert JobState().as_state() == {}, "nothing to keep: nothing written"
    pending = JobState(job_id="5", started=False).as_state()
    assert pending["started"] is False and JobState.from_state(pending).started is False


def test_a_state_from_a_newer_workbench_is_refused_by_name():
    with pytest.raises(StateVersionError, match=f"version {STATE_VERSION + 1}"):
        JobState.from_state({"version": STATE_VERSION + 1, "job_id": "1"})


def test_the_spawner_keeps_its_job_through_the_record(monkeypatch):
    spawner, again = new_spawner(), new_spawner()
    followed = []  # a restarted hub follows the job again (here: noted, not queried)
    for s in (spawner, again):
        monkeypatch.setattr(s.watcher, "watch", lambda job_id, _spawner, closely=False: followed.append(job_id))
    spawner.load_state(VERSION_1_RUNNING)
    assert (spawner.job_id, spawner.port, spawner.ip, spawner.started) == ("4711", 41367, "10.77.0.11", True)
    assert spawner.token_sha256 == "ab" * 32 and spawner.accepted_options == {"cpus": 2}
    again.load_state(spawner.get_state())
    assert again.engine.record == spawner.engine.record and followed == ["4711", "4711"]
    assert spawner.get_state()["version"] == STATE_VERSION


def test_what_outlives_a_job_is_every_key_but_the_jobs():
    record = JobState.from_state(VERSION_1_RUNNING)
    after = record.without_job()
    assert not after.job_id and not after.started and not after.port and not after.token_sha256
    assert (after.last_end, after.accepted_options) == (record.last_end, record.accepted_options)
    assert after.as_state() == {k: v for k, v in record.as_state().items() if k not in JobState.JOB_KEYS}
