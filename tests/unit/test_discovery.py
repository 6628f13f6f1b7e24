"""The hub's memory of the cluster (spawners/discovery.py), asked of the recorded fake SLURM: a
class's burst costs one round of the cluster's commands, answers are refreshed before they are
old, never used older than the site's ``discovery_cache``."""

import asyncio

import pytest

from aifactory_workbench.slurm.parsers import SlurmUnavailable
from aifactory_workbench.spawners import discovery as discovery_module
from aifactory_workbench.spawners.discovery import Discovery

from .recorded_slurm import FakeSlurm

SEATS = [f"seat{n:02d}" for n in range(1, 51)]


@pytest.fixture
def slurm(monkeypatch) -> FakeSlurm:
    """A controller that takes 50 ms for each command and knows the seats (ehpc01's)."""
    monkeypatch.setattr(discovery_module, "user_groups", lambda user: set())
    fake = FakeSlurm()
    fake.delay = 0.05
    fake.association_rows += [f"{seat}|ehpc01|ehpc01||interactive,normal|normal" for seat in SEATS]
    return fake


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def asked(slurm: FakeSlurm, *start: str) -> list[list[str]]:
    return [argv for argv in slurm.commands() if argv[: len(start)] == list(start)]


def test_a_class_signing_in_at_once_costs_one_round_of_the_clusters_commands(slurm):
    """50 forms at once on a cold hub: each used to run scontrol three times and sacctmgr three
    times of its own (300 commands); now the cluster is asked once and the seats' accounts in
    one or two calls (the first seat's, then everyone who asked meanwhile)."""

    async def burst():
        discovery = Discovery(slurm, ttl=60)
        return await asyncio.gather(*(discovery.for_user(seat) for seat in SEATS))

    offered = asyncio.run(burst())
    assert all(choices.accounts() == ["ehpc01"] and "gpp" in choices.partitions for choices in offered)
    for kind in ("partition", "node", "res"):
        assert len(asked(slurm, "scontrol", "show", kind)) == 1, kind
    assert len(asked(slurm, "sacctmgr", "-n", "-P", "show", "qos")) == 1
    calls = asked(slurm, "sacctmgr", "-n", "-P", "show", "user")
    assert 1 <= len(calls) <= 2 and sorted(u for call in calls for u in call[5].split(",")) == SEATS


def test_a_lone_user_is_asked_at_once_and_alone(slurm):
    choices = asyncio.run(Discovery(slurm, ttl=60).for_user("instructor"))
    assert choices.accounts() == ["ehpc01", "ehpc02"] and choices.default_account == "ehpc01"
    (call,) = asked(slurm, "sacctmgr", "-n", "-P", "show", "user")
    assert call[5:7] == ["instructor", "withassoc"]


def test_a_user_slurm_does_not_know_gets_no_account_and_no_partition(slurm):
    choices = asyncio.run(Discovery(slurm, ttl=60).for_user("nobody"))
    assert (choices.accounts(), choices.partitions, choices.default_account) == ([], {}, "")


def test_a_name_that_is_no_unix_users_never_reaches_sacctmgrs_command_line(slurm):
    """The attack: a name with a comma or an '=' would widen or change sacctmgr's question."""
    found = asyncio.run(slurm.associations(["alice", "bob,instructor", "name=instructor", "a b"]))
    (call,) = asked(slurm, "sacctmgr", "-n", "-P", "show", "user")
    assert call[5] == "alice"
    assert found["bob,instructor"] == found["name=instructor"] == ("", []) and found["alice"][0] == "ehpc01"


def test_an_answer_past_half_its_ttl_is_asked_again_beside_the_page_and_never_used_past_the_ttl(slurm):
    clock = Clock()
    discovery = Discovery(slurm, ttl=60, clock=clock)

    async def walk() -> None:
        await discovery.for_user("alice")
        clock.now += 29  # young: nothing is asked
        await discovery.for_user("alice")
        assert len(asked(slurm, "scontrol", "show", "partition")) == 1
        clock.now += 2  # past half the ttl: the page gets the cached answer at once...
        slurm.delay = 0.5
        await asyncio.wait_for(discovery.for_user("alice"), 0.2)
        slurm.delay = 0.0
        await asyncio.sleep(0.6)  # ...and the cluster is asked beside it
        assert len(asked(slurm, "scontrol", "show", "partition")) == 2
        clock.now += 61  # past the ttl of that question (none asked since): the page waits for a new answer
        slurm.delay = 0.2
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(discovery.for_user("alice")), 0.1)

    asyncio.run(walk())


def test_a_failed_call_is_told_to_every_waiter_and_the_next_page_asks_again(slurm):
    async def walk() -> None:
        discovery = Discovery(slurm, ttl=60)
        slurm.down = True
        results = await asyncio.gather(
            *(discovery.for_user(u) for u in ("alice", "instructor")), return_exceptions=True
        )
        assert all(isinstance(r, SlurmUnavailable) for r in results)
        slurm.down = False
        assert (await discovery.for_user("alice")).accounts() == ["ehpc01"]

    asyncio.run(walk())


def test_the_nodes_room_is_one_watch_for_every_form_and_never_older_than_its_own_ttl(slurm):
    """What holds a waiting request is read from the hub's node records: 50 forms saying it at
    once, beside the seats' choices, cost one ``scontrol show node``; those records are asked
    again once :data:`NODES_TTL` has passed, while the partitions' are still young."""
    clock = Clock()
    discovery = Discovery(slurm, ttl=60, clock=clock)

    async def walk() -> None:
        found = await asyncio.gather(
            *(discovery.rooms("gpp") for _ in SEATS), *(discovery.for_user(seat) for seat in SEATS)
        )
        assert all(rooms and {room.name for room in rooms} == {"mn5-g01"} for rooms in found[: len(SEATS)])
        assert len(asked(slurm, "scontrol", "show", "node")) == 1
        clock.now += discovery_module.NODES_TTL + 1
        await discovery.rooms("gpp")
        assert len(asked(slurm, "scontrol", "show", "node")) == 2
        assert len(asked(slurm, "scontrol", "show", "partition")) == 1

    asyncio.run(walk())
