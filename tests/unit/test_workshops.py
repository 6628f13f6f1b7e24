"""Workshops without the cluster: the workshop file's checks, the registry the hub reads, a
seat's job defaults and materials, and the idle cullers' services and roles."""

import datetime
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
from traitlets.config import Config

from aifactory_workbench.hub import hub_client
from aifactory_workbench.hub.culler import activity_interval, in_words, update_culler
from aifactory_workbench.hub.hub_client import HubClient
from aifactory_workbench.hub.workshop_file import WorkshopError, read_workshop_file
from aifactory_workbench.hub.workshop_sheet import write_seat_sheet
from aifactory_workbench.hub.workshops import seats_short_of_memory
from aifactory_workbench.spawners import seats
from aifactory_workbench.spawners.seats import (
    ALL_SEATS_GROUP,
    Ended,
    Materials,
    Registry,
    Workshop,
    registry_problem,
    write_ended,
    write_workshop,
)
from aifactory_workbench.spawners.services import Services

from .defaults import DEFAULTS
from .fakes import new_spawner, services


@pytest.fixture(autouse=True)
def registry_of_this_user(monkeypatch):
    """The registries these tests write are this user's: trusted as root's are at a site (as
    root, nothing changes), so the tests run as any user."""
    monkeypatch.setattr(seats, "REGISTRY_OWNER", os.geteuid())


def write(tmp_path, text):
    path = tmp_path / "workshop.yaml"
    path.write_text(text)
    return path


GOOD = "name: climate\ntitle: Climate data\nend: 2099-01-01T17:00\nseats: 3\ninstructors: [instructor]\n"


def test_a_workshop_file_gets_the_site_preset_and_times(tmp_path):
    spec = read_workshop_file(write(tmp_path, GOOD), DEFAULTS, lambda u: True)
    assert (spec.name, spec.seats, spec.instructors, spec.account) == ("climate", 3, ("instructor",), "")
    assert spec.preset["name"] == "workshop" and spec.preset["cpus"] == 2
    assert spec.start < spec.end and spec.end.year == 2099


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD + "seat: 4\n", "key 'seat': unknown key (did you mean 'seats'?)"),
        (GOOD.replace("climate\n", "Climate 1\n"), "key 'name': value 'Climate 1' is not accepted"),
        (GOOD.replace("2099-01-01T17:00", "2020-01-01T17:00"), "key 'end': value 2020-01-01T17:00 is not accepted"),
        (GOOD + "preset: huge\n", "key 'preset': value 'huge' is not accepted; accepted: one of quick, analysis"),
        (GOOD.replace("seats: 3\n", ""), "key 'seats': missing"),
        (GOOD + "start: tomorrow\n", "key 'start': value 'tomorrow' is not accepted; accepted: now, or a date"),
    ],
)
def test_a_wrong_workshop_file_names_key_value_and_what_is_accepted(tmp_path, text, expected):
    with pytest.raises(WorkshopError) as e:
        read_workshop_file(write(tmp_path, text), DEFAULTS, lambda u: True)
    assert expected in str(e.value)


def test_an_instructor_must_be_a_user_of_the_machine(tmp_path):
    with pytest.raises(WorkshopError, match="key 'instructors': 'instructor' is not a user of this machine"):
        read_workshop_file(write(tmp_path, GOOD), DEFAULTS, lambda u: False)


def workshop(**changes) -> Workshop:
    base = Workshop(
        name="climate",
        title="Climate",
        start="2026-11-28T09:00:00",
        end="2026-11-28T17:00:00",
        seats=("climate-01", "climate-02"),
        instructors=("instructor",),
        account="climate",
        reservation="climate",
        preset={
            "name": "workshop-climate",
            "title": "Climate",
            "partition": "gpp",
            "account": "climate",
            "reservation": "climate",
            "cpus": 2,
        },
        materials=Materials("/srv/ws/climate.bundle", "main", "climate"),
    )
    return replace(base, **changes)


def test_the_registry_is_read_again_when_a_workshop_is_written(tmp_path):
    registry = Registry(tmp_path / "registry")
    assert registry.workshops() == {} and registry.seat_of("climate-01") is None
    write_workshop(tmp_path / "registry", workshop())
    assert registry.seat_of("climate-01") == workshop() and registry.seat_of("alice") is None
    assert registry.led_by("instructor") == [workshop()] and registry.led_by("alice") == []


def test_an_ended_workshop_names_the_seats_the_hub_must_forget(tmp_path):
    """Hub users made before the end go; one made after (the next workshop's seat) stays."""
    registry = Registry(tmp_path / "registry")
    write_workshop(tmp_path / "registry", workshop())
    ended = Ended.now("climate", ("climate-01", "climate-02"))
    write_ended(tmp_path / "registry", ended)
    assert registry.ended() == {"climate": ended} and list(registry.workshops()) == ["climate"]
    at = datetime.datetime.fromisoformat(ended.at)
    assert ended.made_before(at - datetime.timedelta(microseconds=1)) and ended.made_before(None)
    assert not ended.made_before(at) and not ended.made_before(at + datetime.timedelta(seconds=1))


def test_a_registry_others_may_write_is_not_trusted(tmp_path):
    folder = tmp_path / "registry"
    write_workshop(folder, workshop())
    folder.chmod(0o777)
    assert "must belong to root and be writable by root alone" in registry_problem(folder)
    assert Registry(folder).workshops() == {}


def test_instructors_reach_their_seats_servers_and_nobody_elses():
    role = workshop().role()
    assert role["users"] == ["instructor"]
    assert set(role["scopes"]) == {
        f"{s}!group=workshop-climate" for s in ("access:servers", "servers", "read:users", "list:users")
    } | {"access:servers!user=climate-01", "access:servers!user=climate-02"}


def test_a_seats_job_goes_to_its_reservation_with_its_materials(tmp_path):
    write_workshop(tmp_path, workshop(seats=("alice",)))
    spawner = new_spawner()
    spawner.services = replace(services(), workshops=Registry(tmp_path))
    settings = spawner.job_defaults()
    assert (settings.reservation, settings.account, settings.cpus) == ("climate", "climate", 2)
    assert spawner.own_presets()[0]["name"] == "workshop-climate"
    script = spawner.batch_script_for(spawner.job_request(), spawner.get_env())
    assert "#SBATCH --reservation=climate" in script and "#SBATCH --account=climate" in script
    pull = "/opt/aifactory/venv/bin/gitpuller /srv/ws/climate.bundle main /home/alice/climate ||"
    assert pull in script and script.index(pull) < script.index("aifactory-singleuser")
    spawner.services = replace(services(), workshops=Registry(tmp_path / "none"))
    assert spawner.job_defaults().reservation == "" and "gitpuller" not in spawner.batch_script_for(
        spawner.job_request(), spawner.get_env()
    )


def culling_site(**culler):
    return replace(DEFAULTS, culler=replace(DEFAULTS.culler, **culler))


def test_no_culler_runs_unless_the_site_sets_a_timeout():
    c = Config()
    update_culler(c, DEFAULTS)
    assert "services" not in c.JupyterHub and "environment" not in c.WorkbenchSpawner


def test_seats_get_their_own_shorter_culler_which_sees_only_seats():
    c = Config()
    site = culling_site(idle_timeout=7200, seat_idle_timeout=1200)
    update_culler(c, site)
    assert [s["name"] for s in c.JupyterHub.services] == ["idle-culler", "idle-culler-seats"]
    assert "--timeout=1200" in c.JupyterHub.services[1]["command"]
    seats_role = c.JupyterHub.load_roles[1]
    assert seats_role["services"] == ["idle-culler-seats"]
    assert all(s.endswith(f"!group={ALL_SEATS_GROUP}") for s in seats_role["scopes"])
    assert "admin:users" not in c.JupyterHub.load_roles[0]["scopes"]
    assert c.WorkbenchSpawner.environment == {"JUPYTERHUB_ACTIVITY_INTERVAL": "300"}
    assert activity_interval(culling_site(idle_timeout=40)) == 10
    assert (in_words(40), in_words(1200), in_words(7200)) == ("40 seconds", "20 minutes", "2 hours")


def test_a_seat_timeout_no_shorter_than_everyones_adds_no_second_culler():
    c = Config()
    update_culler(c, culling_site(idle_timeout=600, seat_idle_timeout=900))
    assert [s["name"] for s in c.JupyterHub.services] == ["idle-culler"]


def test_services_share_one_registry_of_workshops(tmp_path):
    registry = Registry(tmp_path)
    assert (
        Services.build(
            job_name="x", poll_interval=1, startup_poll_interval=1, discovery_cache=1, workshops=registry
        ).workshops
        is registry
    )
    assert Path(registry.directory) == tmp_path


def test_the_hub_starts_with_the_workshops_groups_and_roles(tmp_path):
    from aifactory_workbench.hub.configure import update_workshops
    from aifactory_workbench.hub.site import SiteConfigError

    write_workshop(tmp_path / "registry", workshop())
    site = replace(DEFAULTS, workshops=replace(DEFAULTS.workshops, registry=str(tmp_path / "registry")))
    c = Config()
    registry = update_workshops(c, site)
    assert registry.seat_of("climate-02").name == "climate"
    assert c.JupyterHub.load_groups == {"workshop-climate": {"users": ["climate-01", "climate-02"]}}
    assert c.JupyterHub.load_roles == [workshop().role()]
    (tmp_path / "registry").chmod(0o757)
    with pytest.raises(SiteConfigError, match="key 'workshops.registry': .* writable by root alone"):
        update_workshops(Config(), site)


def test_the_seat_slips_come_from_their_template_and_escape_what_they_show(tmp_path):
    workshop = Workshop(
        name="climate",
        title="Dask <b>now</b>",
        start="2099-01-01T09:00:00",
        end="2099-01-01T17:00:00",
        seats=("climate-01",),
        instructors=("instructor",),
        account="climate",
        reservation="climate",
        preset={},
    )
    write_seat_sheet(workshop, {"climate-01": "p<w>&1"}, tmp_path, "https://hub.example.eu/")
    page = (tmp_path / "seats.html").read_text()
    assert "Dask &lt;b&gt;now&lt;/b&gt;" in page and "p&lt;w&gt;&amp;1" in page and "<b>now</b>" not in page
    assert page.count('class="slip"') == 1 and "https://hub.example.eu/" in page
    assert (tmp_path / "seats.csv").read_text().splitlines()[1] == "climate-01,p<w>&1,https://hub.example.eu/"
    assert {oct((tmp_path / n).stat().st_mode & 0o777) for n in ("seats.csv", "seats.html")} == {"0o600"}


def test_the_hub_client_takes_its_address_and_tls_from_the_hubs_settings(tmp_path, monkeypatch):
    plain = HubClient(replace(DEFAULTS.hub, internal_ssl=False, admin_services=[]))
    assert not plain.configured and plain.ssl_context() is None
    made = []
    monkeypatch.setattr(hub_client, "make_ssl_context", lambda *args, **kwargs: made.append((args, kwargs)) or "ctx")
    secured = HubClient(replace(DEFAULTS.hub, internal_ssl=True, state_dir=str(tmp_path)))
    assert secured.ssl_context() == "ctx"
    own = tmp_path / "internal-ssl" / "hub-internal"
    key, cert, trust = own / "hub-internal.key", own / "hub-internal.crt", own.parent / "hub-ca_trust.crt"
    assert made == [((str(key), str(cert)), {"cafile": str(trust)})]


def test_an_instructor_is_told_when_the_reservations_node_cannot_hold_every_seat():
    """Seen in the 50-seat burst: SLURM put all 50 reserved cores on one 16000M node, and seats
    of 400M fit 40; ten seats waited. The warning names the node and a memory that fits."""
    told = seats_short_of_memory(50, 400, {"mn5-g01": 16000})
    assert told.startswith("warning: only 40 of the 50 seats can run at once")
    assert "mn5-g01 (16000M)" in told and "at most 320M" in told
    assert seats_short_of_memory(50, 320, {"mn5-g01": 16000}) == ""
    assert seats_short_of_memory(50, 400, {"mn5-g01": 16000, "mn5-g02": 16000}) == ""
    assert seats_short_of_memory(50, 0, {"mn5-g01": 16000}) == ""  # a seat's memory not known: nothing said
    assert seats_short_of_memory(50, 400, {}) == ""  # no node known yet (a reservation in the future)


def test_a_seats_password_has_no_characters_a_slip_shows_alike():
    """Issue 36: token_urlsafe passwords mixed l/I/1 and 0/O, and '-'/'_' at the ends, on slips
    students type from."""
    from aifactory_workbench.root.workshop_accounts import seat_password

    made = {seat_password() for _ in range(200)}
    assert len(made) == 200
    for password in made:
        assert re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}-[a-z2-9]{5}", password), password
        assert not set(password) & set("lI1oO0_"), password


def test_a_seats_walltime_ends_with_the_workshop():
    """issue 36: a seat's preset of 3 h was offered 1 h 50 min before the workshop's end; SLURM
    would hold such a job of the reservation for ever. The walltime ends with the workshop, to the
    minute; a shorter one stays as the preset says."""
    seat = Workshop(
        name="intro",
        title="Intro",
        start="2026-12-07T09:00:00",
        end="2026-12-07T12:00:00",
        seats=("intro-01",),
        instructors=("instructor",),
        account="ehpc01",
        reservation="aifw-intro",
        preset={"name": "workshop-intro", "walltime": "03:00:00", "cpus": 1},
    )
    at = datetime.datetime(2026, 12, 7, 10, 10, 30)
    assert seat.seat_preset(at) == {"name": "workshop-intro", "walltime": "01:49:00", "cpus": 1}
    assert seat.seat_preset(datetime.datetime(2026, 12, 7, 8, 0))["walltime"] == "03:00:00"
    assert seat.seat_preset(datetime.datetime(2026, 12, 7, 11, 59, 50))["walltime"] == "00:01:00"
    assert seat.preset["walltime"] == "03:00:00"  # the workshop's record is unchanged
