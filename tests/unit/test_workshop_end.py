"""A workshop's end forgets its seats once, whoever asks (issue 38: a class's end under load).

The instructor's end (the API) and the hub's own look at ended workshops both forgot the seats;
the second found a user the first had deleted while it stopped servers, and the instructor's
`aifactory-workshop end` got a 500 after 27 s of servers stopped one by one."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field

from jupyterhub import orm

from aifactory_workbench.hub import workshop_pages
from aifactory_workbench.hub.workshop_pages import forget_seats
from aifactory_workbench.spawners.seats import Ended


@dataclass
class Spawner:
    active: bool = True


@dataclass
class User:
    name: str
    spawners: dict[str, Spawner] = field(default_factory=lambda: {"": Spawner()})


class Users:
    """JupyterHub's UserDict as forget_seats uses it: a wrapper per ORM user; delete raises
    KeyError for a user already gone, as JupyterHub's does."""

    def __init__(self, db) -> None:
        self.db, self.wrapped = db, {}

    def __getitem__(self, orm_user) -> User:
        return self.wrapped.setdefault(orm_user.name, User(orm_user.name))

    def delete(self, user: User) -> None:
        found = orm.User.find(self.db, user.name)
        if found is None:
            raise KeyError(f"No such user: {user.name}")
        self.db.delete(found)
        self.db.commit()


def hub_db(seats: list[str]):
    db = orm.new_session_factory("sqlite://")()
    for seat in seats:
        db.add(orm.User(name=seat))
    db.commit()
    return db


def ended(seats: list[str]) -> Ended:
    later = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(minutes=1)
    return Ended(name="burst", seats=tuple(seats), at=later.isoformat())


def test_the_end_and_the_hubs_own_look_forget_each_seat_once():
    seats = [f"burst-{i:02d}" for i in range(8)]
    db = hub_db(seats)
    users = Users(db)
    stopped: list[str] = []

    async def stop(user: User, name: str) -> None:
        await asyncio.sleep(0.01)  # a scancel: the other caller runs meanwhile
        user.spawners[name].active = False
        stopped.append(user.name)

    async def both() -> list[tuple[int, int]]:
        end = ended(seats)
        return await asyncio.gather(
            forget_seats(db, users, stop, end, ending=True), forget_seats(db, users, stop, end, ending=False)
        )

    results = asyncio.run(both())
    assert sorted(results) == [(0, 0), (8, 8)]
    assert sorted(stopped) == seats  # each server stopped once
    assert db.query(orm.User).count() == 0


def test_a_class_of_seats_is_stopped_several_at_once(monkeypatch):
    seats = [f"burst-{i:02d}" for i in range(30)]
    db = hub_db(seats)
    running = peak = 0

    async def stop(user: User, name: str) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        user.spawners[name].active = False

    assert asyncio.run(forget_seats(db, Users(db), stop, ended(seats), ending=True)) == (30, 30)
    assert 1 < peak <= workshop_pages.STOPS_AT_ONCE
