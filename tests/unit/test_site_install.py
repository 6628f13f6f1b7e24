"""What `aifactory-site install` writes, rendered without installing it (a placeholder left
without a value is refused): the sudo rules accepted by visudo, the unit by systemd-analyze verify."""

from pathlib import Path

import pytest

from aifactory_workbench.hub.site import load_site_config
from aifactory_workbench.root.site_install import Accounts, render, systemd_verify, unit_service, values, visudo

CONFIG = Path(__file__).parents[2] / "config"
TEMPLATES = {
    "sudoers": CONFIG / "sudoers.in",
    "profile": CONFIG / "profile.d" / "aifactory-dask.sh.in",
    "unit": CONFIG / "systemd" / "aifactory-hub.service.in",
    "logrotate": CONFIG / "logrotate" / "aifactory-workbench.in",
}


@pytest.fixture
def rendered(tmp_path):
    site = load_site_config(CONFIG / "site.yaml")
    filled = values(site, Accounts())
    out = {}
    for name, template in TEMPLATES.items():
        out[name] = tmp_path / name
        out[name].write_text(render(template.read_text(), filled))
    return out


def test_the_sudo_rules_and_the_unit_verify(rendered):
    assert visudo(rendered["sudoers"]) == ""
    assert systemd_verify(rendered["unit"]) == ""
    service = unit_service(rendered["unit"].read_text())
    assert service["User"] == ["aifactory-hub"] and service["NoNewPrivileges"] == ["no"]
    assert service["ExecStart"][0].split()[0].endswith("/bin/jupyterhub")


def test_a_placeholder_without_a_value_is_refused():
    with pytest.raises(ValueError, match="@NOPE@ has no value"):
        render("User=@NOPE@\n", {"HUB_USER": "x"})
