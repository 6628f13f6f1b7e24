"""The site config: one YAML file layered over ``defaults.yaml``, checked before use.

A centre describes itself (partitions, accounts, ports, admins) as data.  The hub reads
it at start-up and refuses to start on a wrong value, naming the key, the value and what
would be accepted, so an admin fixes the file instead of reading a traceback.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from aifactory_workbench.slurm.job_fields import JOB_RULES
from aifactory_workbench.slurm.job_fields import USER_OPTIONS as PRESET_KEYS
from aifactory_workbench.slurm.values import (
    JOB_NAME,
    MEMORY_SIZE,
    PARTITION,
    PROLOGUE_ACCEPTED,
    QOS,
    SLURM_NAME,
    UNIX_USER,
    WALLTIME_TEXT,
    Rule,
    SiteHooks,
    is_int,
    lmod_init_ok,
    matches,
    port_range_ok,
    prologue_words,
)

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
DEFAULT_SITE_FILE = Path("/etc/aifactory/site.yaml")
SITE_FILE_ENV = "AIFACTORY_SITE_CONFIG"

_PRESET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_TITLE = re.compile(r"[^\x00-\x1f<>]{1,120}")
_LINK = re.compile(r"(https://|mailto:)[^\s<>\"']{1,200}")


class SiteConfigError(ValueError):
    """The site file is unusable; the message lists every problem, one per line."""


#: The shortest token or secret a file the site file names may hold.
SECRET_MIN_LENGTH = 16


def read_secret(path: str, key: str, name: str = "") -> str:
    """The token or secret in the file ``path`` that the site file's ``key`` names (``name``: whose,
    for the message): opened without following a link, a regular file, one line of at least
    :data:`SECRET_MIN_LENGTH` printable ASCII characters (the line's ends stripped). The one
    reader of the hub's secrets: SiteConfigError, naming the key, for anything else."""
    whose = f" of {name!r}" if name else ""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise SiteConfigError(f"key '{key}': file {path!r}{whose} cannot be read: {e.strerror}") from None
    with os.fdopen(descriptor, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise SiteConfigError(f"key '{key}': file {path!r}{whose} is not a regular file")
        text = f.read(4096).decode(errors="replace").strip()
    if "\n" in text or not (text.isascii() and text.isprintable()):
        raise SiteConfigError(f"key '{key}': file {path!r}{whose} holds more than one line of printable text")
    if len(text) < SECRET_MIN_LENGTH:
        raise SiteConfigError(f"key '{key}': file {path!r}{whose} holds under {SECRET_MIN_LENGTH} characters")
    return text


def _is_seconds(lo: float, hi: float) -> Rule:
    return Rule(lambda v: type(v) in (int, float) and lo <= v <= hi, f"a number of seconds from {lo:g} to {hi:g}")


def _is_abs_path() -> Rule:
    return Rule(lambda v: isinstance(v, str) and v.startswith("/"), "an absolute path")


def _is_abs_path_or_empty() -> Rule:
    return Rule(lambda v: v == "" or (isinstance(v, str) and v.startswith("/")), '"" or an absolute path')


def _is_bool() -> Rule:
    return Rule(lambda v: type(v) is bool, "true or false")


def _is_host(empty: bool) -> Rule:
    pattern = re.compile(r"[A-Za-z0-9.:-]+")
    accepted = "a host name or IP address" + (' or "" for all interfaces' if empty else "")
    return matches(pattern, accepted, empty=empty)


def _is_name_list(pattern: re.Pattern[str], what: str) -> Rule:
    return Rule(
        lambda v: isinstance(v, list) and all(isinstance(x, str) and pattern.fullmatch(x) for x in v),
        f"a list of {what}",
    )


def _is_services() -> Rule:
    def ok(value: Any) -> bool:
        return isinstance(value, list) and all(
            isinstance(s, dict)
            and set(s) == {"name", "token_file"}
            and isinstance(s["name"], str)
            and SLURM_NAME.fullmatch(s["name"])
            and isinstance(s["token_file"], str)
            and s["token_file"].startswith("/")
            for s in value
        )

    return Rule(ok, "a list of {name: NAME, token_file: /absolute/path}")


def _is_db_url() -> Rule:
    return Rule(
        lambda v: isinstance(v, str) and (v == "" or v.startswith(("sqlite:///", "postgresql://"))),
        '"" (SQLite in state_dir), sqlite:///PATH or postgresql://USER@HOST/DB',
    )


def rule(r: Rule, default: Any = MISSING) -> Any:
    """A key of a checked file (the site file, a workshop file): its rule, and its default if
    the key may be left out (the site file's defaults are in defaults.yaml)."""
    return field(default=default, metadata={"rule": r})


def key_problems(cls: type, values: dict[str, Any], prefix: str = "") -> list[str]:
    """What is wrong with ``values`` for the keys of ``cls`` (a dataclass made with :func:`rule`),
    each named ``'{prefix}{key}'`` with its value and what is accepted; a key without a
    default must be given."""
    problems = []
    for f in fields(cls):
        r: Rule = f.metadata["rule"]
        if f.name not in values and f.default is MISSING:
            problems.append(f"key '{prefix}{f.name}': missing; accepted: {r.accepted}")
            continue
        value = values.get(f.name, f.default)
        if not r.check(value):
            what = f" ({r.explain(value)})" if r.explain else ""
            problems.append(f"key '{prefix}{f.name}': value {value!r} is not accepted{what}; accepted: {r.accepted}")
    return problems


@dataclass(frozen=True)
class HubSettings:
    ip: str = rule(_is_host(empty=True))
    port: int = rule(is_int(1, 65535))
    hub_ip: str = rule(_is_host(empty=False))
    hub_port: int = rule(is_int(1, 65535))
    connect_ip: str = rule(_is_host(empty=False))
    proxy_api_port: int = rule(is_int(1, 65535))
    state_dir: str = rule(_is_abs_path())
    db_url: str = rule(_is_db_url())
    proxy_command: str = rule(_is_abs_path())
    proxy_token_file: str = rule(_is_abs_path_or_empty())
    admin_users: list[str] = rule(_is_name_list(UNIX_USER, "Unix user names"))
    allowed_groups: list[str] = rule(_is_name_list(UNIX_USER, "Unix group names"))
    admin_services: list[dict[str, str]] = rule(_is_services())
    named_servers_per_user: int = rule(is_int(0, 100))
    poll_interval: float = rule(_is_seconds(0.5, 3600))
    start_timeout: float = rule(_is_seconds(5, 7 * 24 * 3600))
    queue_timeout: float = rule(_is_seconds(60, 30 * 24 * 3600))
    http_timeout: float = rule(_is_seconds(5, 3600))
    public_url: str = rule(
        Rule(
            lambda v: isinstance(v, str) and (v == "" or re.fullmatch(r"https?://[A-Za-z0-9.:-]+/?", v) is not None),
            '"" (served as requested) or the URL users type, such as https://hub.example.eu/',
        )
    )
    user_subdomains: bool = rule(_is_bool())
    ssl_cert: str = rule(_is_abs_path_or_empty())
    ssl_key: str = rule(_is_abs_path_or_empty())
    cookie_max_age_days: float = rule(_is_seconds(0.01, 30))
    internal_ssl: bool = rule(_is_bool())
    user_sharing: bool = rule(_is_bool())

    @property
    def database_url(self) -> str:
        """The hub's database: db_url, or SQLite in state_dir when that is empty."""
        return self.db_url or f"sqlite:///{Path(self.state_dir) / 'jupyterhub.sqlite'}"

    @property
    def internal_certs_dir(self) -> Path:
        """internal_ssl: where the hub keeps its CAs and its own certificates."""
        return Path(self.state_dir) / "internal-ssl"

    @property
    def proxy_on_its_own(self) -> bool:
        """The proxy is a service of its own (proxy_token_file set), not the hub's child: a hub
        restart keeps every open connection."""
        return bool(self.proxy_token_file)


def _is_one_of(*choices: str) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(choices))


def _is_url_or_empty() -> Rule:
    pattern = re.compile(r"https?://[A-Za-z0-9.:-]+(/[A-Za-z0-9._~/-]*)?")
    return matches(pattern, '"" or an http(s) URL such as https://id.example.eu/realms/aif', empty=True)


def _is_text(limit: int) -> Rule:
    return Rule(
        lambda v: isinstance(v, str) and _TITLE.fullmatch(v) is not None and len(v) <= limit,
        f"text of 1 to {limit} characters without '<', '>'",
    )


def _is_username_map() -> Rule:
    return Rule(
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(k, str) and k and isinstance(u, str) and UNIX_USER.fullmatch(u) for k, u in v.items())
        ),
        "a mapping of identity claim values to Unix user names",
    )


@dataclass(frozen=True)
class AuthSettings:
    method: str = rule(_is_one_of("pam", "oidc"))
    failure_delay: float = rule(_is_seconds(1, 30))
    lockout_failures: int = rule(is_int(1, 100))
    lockout_seconds: float = rule(_is_seconds(0, 24 * 3600))
    oidc_issuer: str = rule(_is_url_or_empty())
    oidc_client_id: str = rule(matches(SLURM_NAME, '"" or a client id', empty=True))
    oidc_client_secret_file: str = rule(_is_abs_path_or_empty())
    # Names that users can edit (preferred_username, name) would let anyone claim an account.
    oidc_username_claim: str = rule(_is_one_of("email", "sub"))
    oidc_username_map: dict[str, str] = rule(_is_username_map())
    oidc_login_service: str = rule(_is_text(60))


@dataclass(frozen=True)
class BrandSettings:
    """What every hub page shows: the product's name, its logo, whom to ask."""

    product_name: str = rule(_is_text(60))
    logo_file: str = rule(_is_abs_path_or_empty())
    support_contact: str = rule(_is_text(120))
    support_url: str = rule(matches(_LINK, '"" or an https:// or mailto: link', empty=True))


@dataclass(frozen=True)
class SlurmSettings:
    """Defaults of JupyterLab jobs (the spawner's req_* settings: one key per row of the job
    fields' table, slurm/job_fields.py, in its order and of its kind, with its rule; their values
    in defaults.yaml), how jobs are named, and where SLURM's commands are (what sudo's rules name:
    ``aifactory-site install`` writes them). Written out for the type checker; the table stays the
    one home of the job settings: ``tests/unit/test_settings_classes.py`` fails when they differ."""

    partition: str = rule(JOB_RULES["partition"])
    account: str = rule(JOB_RULES["account"])
    qos: str = rule(JOB_RULES["qos"])
    cpus: int = rule(JOB_RULES["cpus"])
    memory: str = rule(JOB_RULES["memory"])
    gpus: int = rule(JOB_RULES["gpus"])
    walltime: str = rule(JOB_RULES["walltime"])
    reservation: str = rule(JOB_RULES["reservation"])
    constraint: str = rule(JOB_RULES["constraint"])
    job_name: str = rule(JOB_NAME)
    startup_poll_interval: float = rule(_is_seconds(0.1, 60))
    bin_dir: str = rule(_is_abs_path_or_empty())


def preset_problems(preset: Any) -> list[str]:
    """What is wrong with one preset (empty: nothing)."""
    if not isinstance(preset, dict):
        return [f"{preset!r} is not a mapping"]
    problems = []
    for key, value in preset.items():
        if key == "name" and not (isinstance(value, str) and _PRESET_NAME.fullmatch(value)):
            problems.append(f"name {value!r}: accepted: lower-case letters, digits and '-' (up to 32)")
        elif key in ("title", "description") and not (
            isinstance(value, str) and _TITLE.fullmatch(value) and len(value) <= 80
        ):
            problems.append(f"{key} {value!r}: accepted: text of 1 to 80 characters without '<', '>'")
        elif key in PRESET_KEYS or key not in ("name", "title", "description"):
            problems += job_setting_problems({key: value}, also="name, title, description")
    problems += [f"missing key {k!r}" for k in ("name", "title") if k not in preset]
    return problems


def job_setting_problems(settings: dict[str, Any], also: str = "") -> list[str]:
    """What is wrong with job settings that a preset sets (empty: nothing): a key that is not a
    job setting (``also``: the other keys the caller accepts, for the message), or a value that
    breaks the setting's rule (the one that ``slurm.*`` keys follow)."""
    problems = []
    for key, value in settings.items():
        if key not in PRESET_KEYS:
            accepted = ", ".join(([also] if also else []) + list(PRESET_KEYS))
            problems.append(f"unknown key {key!r}; accepted: {accepted}")
        elif not JOB_RULES[key].check(value):
            problems.append(f"{key} {value!r}: accepted: {JOB_RULES[key].accepted}")
    return problems


def _is_job_settings() -> Rule:
    """A mapping of job settings (any of the preset keys, no name or title): the notebook-job preset."""
    return Rule(
        lambda v: isinstance(v, dict) and not job_setting_problems(v),
        f"a mapping of any of {', '.join(PRESET_KEYS)} with the values that slurm.* accepts",
        lambda v: "; ".join(job_setting_problems(v)) if isinstance(v, dict) else "not a mapping",
    )


def _is_presets() -> Rule:
    def ok(value: Any) -> bool:
        if not isinstance(value, list):
            return False
        names = [p.get("name") for p in value if isinstance(p, dict)]
        return len(set(names)) == len(value) and not any(preset_problems(p) for p in value)

    def explain(value: Any) -> str:
        if not isinstance(value, list):
            return "not a list"
        found = [f"preset {i + 1}: {p}" for i, preset in enumerate(value) for p in preset_problems(preset)]
        return "; ".join(found) or "preset names are not unique"

    return Rule(
        ok,
        "a list of presets, each {name: a-z0-9-, title: TEXT, description: TEXT} plus any of "
        f"{', '.join(PRESET_KEYS)} with the values that slurm.* accepts; names unique",
        explain,
    )


@dataclass(frozen=True)
class FormSettings:
    presets: list[dict[str, Any]] = rule(_is_presets())
    #: What a notebook run as a batch job asks for unless its user chooses otherwise (JupyterLab's
    #: "Run as Batch Job…" dialog and ``aifactory-run-notebook run``): a setting not named here asks
    #: SLURM for nothing.
    notebook_job: dict[str, Any] = rule(_is_job_settings())
    discovery_cache: float = rule(_is_seconds(0, 3600))
    usage_days: int = rule(is_int(1, 3660))
    alternatives_after: int = rule(is_int(0, 86400))


@dataclass(frozen=True)
class DaskSettings:
    partition: str = rule(PARTITION)
    qos: str = rule(QOS)
    cores: int = rule(JOB_RULES["cpus"])
    memory: str = rule(MEMORY_SIZE)
    walltime: str = rule(WALLTIME_TEXT)
    local_directory: str = rule(_is_abs_path())


@dataclass(frozen=True)
class WorkshopSettings:
    registry: str = rule(_is_abs_path())
    state_dir: str = rule(_is_abs_path())
    materials_dir: str = rule(_is_abs_path())


@dataclass(frozen=True)
class CullerSettings:
    idle_timeout: float = rule(_is_seconds(0, 30 * 24 * 3600))
    seat_idle_timeout: float = rule(_is_seconds(0, 30 * 24 * 3600))
    every: float = rule(_is_seconds(1, 3600))


@dataclass(frozen=True)
class GallerySettings:
    dir: str = rule(_is_abs_path())
    shared_storage: list[str] = rule(
        Rule(
            lambda v: isinstance(v, list) and all(isinstance(x, str) and x.startswith("/") for x in v),
            "a list of absolute paths",
        )
    )


_INDEX_URL = re.compile(r"(https?://[A-Za-z0-9.:@-]+(/[A-Za-z0-9._~%/+-]*)?|file:///[A-Za-z0-9._~/+-]*)")


def _is_index_url_list() -> Rule:
    return Rule(
        lambda v: isinstance(v, list) and all(isinstance(x, str) and _INDEX_URL.fullmatch(x) for x in v),
        "a list of package index URLs (PEP 503 simple indexes: https://..., http://... or file:///...)",
    )


def _is_root_folder_list() -> Rule:
    return Rule(
        lambda v: (
            isinstance(v, list)
            and all(isinstance(x, str) and x.startswith("/") and ".." not in x.split("/") for x in v)
        ),
        "a list of absolute paths of folders of wheels, root's alone (root owns them and every folder "
        "above them, and no one else may write them)",
    )


@dataclass(frozen=True)
class EnvironmentsSettings:
    """The package indexes a gallery launch installs a published environment from, and the hub
    pins each file's hash against when publishing: the site's alone, never an entry's."""

    index_url: str = rule(matches(_INDEX_URL, '"" (no index server: only find_links) or an index URL', empty=True))
    extra_index_urls: list[str] = rule(_is_index_url_list())
    find_links: list[str] = rule(_is_root_folder_list())

    @property
    def uv_options(self) -> list[str]:
        """These indexes as uv's options (``uv pip compile`` on the hub, ``uv pip install`` in the job)."""
        options = ["--index-url", self.index_url] if self.index_url else ["--no-index"]
        options += [o for url in self.extra_index_urls for o in ("--extra-index-url", url)]
        return options + [o for folder in self.find_links for o in ("--find-links", folder)]


def environments_problems(environments: EnvironmentsSettings) -> list[str]:
    """What the index keys say together: extra indexes need an index (uv's --no-index drops them)."""
    if environments.extra_index_urls and not environments.index_url:
        return [
            f"key 'environments.extra_index_urls': value {environments.extra_index_urls!r} is not accepted with "
            "environments.index_url ''; accepted: [] (or set environments.index_url: with no index server, "
            "only environments.find_links is read)"
        ]
    return []


#: The most a session may be extended by, in all (7 days, in minutes).
MAX_EXTEND_MINUTES = 7 * 24 * 60


def _is_extend() -> Rule:
    """``off`` (YAML reads a bare off as false), or {step: MINUTES, total: MINUTES}."""

    def ok(v: Any) -> bool:
        if v is False or v == "off":
            return True
        return (
            isinstance(v, dict)
            and set(v) == {"step", "total"}
            and all(type(v[k]) is int for k in v)
            and 1 <= v["step"] <= v["total"] <= MAX_EXTEND_MINUTES
        )

    return Rule(ok, f"off, or {{step: MINUTES, total: MINUTES}} with 1 <= step <= total <= {MAX_EXTEND_MINUTES}")


def _is_prologue() -> Rule:
    def explain(value: Any) -> str:
        if not isinstance(value, list):
            return "not a list"
        return "; ".join(f"command {i + 1}: {c!r}" for i, c in enumerate(value) if prologue_words(c) is None)

    return Rule(
        lambda v: isinstance(v, list) and all(prologue_words(c) is not None for c in v),
        f"a list of commands run before JupyterLab in every job, each {PROLOGUE_ACCEPTED}",
        explain,
    )


@dataclass(frozen=True)
class SingleuserSettings:
    venv: str = rule(_is_abs_path())
    default_url: str = rule(matches(re.compile(r"/[A-Za-z0-9/_.-]*"), "a URL path such as /lab"))
    warn_minutes: list[int] = rule(
        Rule(
            lambda v: isinstance(v, list) and len(v) <= 5 and all(type(m) is int and 1 <= m <= 1440 for m in v),
            "a list of up to 5 whole minutes from 1 to 1440",
        )
    )
    save_before_end: int = rule(is_int(0, 3600))
    extend: Any = rule(_is_extend())
    prologue: list[str] = rule(_is_prologue())
    lmod_init: str = rule(Rule(lmod_init_ok, '"" (no Lmod) or the absolute path of Lmod\'s init/profile'))
    port_range: list[int] = rule(
        Rule(port_range_ok, "[] (any free port) or [LOW, HIGH] with 1024 <= LOW <= HIGH <= 65535")
    )

    @property
    def hooks(self) -> SiteHooks:
        """What these keys add to every JupyterLab job (spawners/jobscript.py)."""
        return SiteHooks(tuple(self.prologue), self.lmod_init, tuple(self.port_range) or None)

    @property
    def extend_minutes(self) -> tuple[int, int] | None:
        """``extend`` as (step, total) minutes; None when it is off."""
        if not isinstance(self.extend, dict):
            return None
        return int(self.extend["step"]), int(self.extend["total"])


@dataclass(frozen=True)
class SiteConfig:
    hub: HubSettings
    auth: AuthSettings
    brand: BrandSettings
    slurm: SlurmSettings
    form: FormSettings
    dask: DaskSettings
    workshops: WorkshopSettings
    culler: CullerSettings
    gallery: GallerySettings
    environments: EnvironmentsSettings
    singleuser: SingleuserSettings
    source: str = "defaults"


_SECTIONS: dict[str, type] = {
    "hub": HubSettings,
    "auth": AuthSettings,
    "brand": BrandSettings,
    "slurm": SlurmSettings,
    "form": FormSettings,
    "dask": DaskSettings,
    "workshops": WorkshopSettings,
    "culler": CullerSettings,
    "gallery": GallerySettings,
    "environments": EnvironmentsSettings,
    "singleuser": SingleuserSettings,
}


def read_yaml(path: Path, what: str = "site config", error: type[ValueError] = SiteConfigError) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; ``error`` names what is wrong with it."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise error(f"{what} {path}: cannot be read: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise error(f"{what} {path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise error(f"{what} {path}: the top level must be a mapping of keys")
    return data


def unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"key '{key}': unknown key{hint}; accepted keys: {', '.join(known)}"


def _merge(defaults: dict[str, Any], site: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Overlay the site's values on the defaults; report keys the schema does not know."""
    problems: list[str] = []
    merged = {name: dict(defaults.get(name, {})) for name in _SECTIONS}
    for section, values in site.items():
        if section not in _SECTIONS:
            problems.append(unknown_key(str(section), list(_SECTIONS)))
            continue
        if not isinstance(values, dict):
            problems.append(f"key '{section}': value {values!r} is not accepted; accepted: a mapping of keys")
            continue
        known = [f.name for f in fields(_SECTIONS[section])]
        for key, value in values.items():
            if key in known:
                merged[section][key] = value
            else:
                problems.append(unknown_key(f"{section}.{key}", [f"{section}.{k}" for k in known]))
    return merged, problems


def _build(merged: dict[str, dict[str, Any]], problems: list[str]) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        problems += key_problems(cls, {f.name: merged[name].get(f.name) for f in fields(cls)}, f"{name}.")
        if not problems:
            sections[name] = cls(**merged[name])
    return sections


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def front_problems(hub: HubSettings) -> list[str]:
    """What the public front's keys say together that none says alone: per-user origins need a
    host name to put users under, and a certificate serves https only."""
    problems = []
    host = urlsplit(hub.public_url).hostname or ""
    if hub.user_subdomains and not host:
        problems.append(
            "key 'hub.public_url': value '' is not accepted with hub.user_subdomains true; accepted: the URL users "
            "type, such as https://hub.example.eu/, whose host and every name under it reach the proxy "
            "(or hub.user_subdomains: false, where every user's JupyterLab shares the hub's origin and a page "
            "one user serves acts as whoever opens it)"
        )
    elif hub.user_subdomains and is_ip_address(host):
        problems.append(
            f"key 'hub.public_url': value {hub.public_url!r} is not accepted with hub.user_subdomains true; "
            "accepted: a URL with a host name (users' servers get names under it), not an IP address"
        )
    if bool(hub.ssl_cert) != bool(hub.ssl_key):
        missing = "hub.ssl_key" if hub.ssl_cert else "hub.ssl_cert"
        problems.append(
            f"key '{missing}': value '' is not accepted; accepted: both hub.ssl_cert and hub.ssl_key, or neither"
        )
    if hub.ssl_cert and not hub.public_url.startswith("https://"):
        problems.append(
            f"key 'hub.public_url': value {hub.public_url!r} is not accepted with hub.ssl_cert; "
            "accepted: an https:// URL (the proxy serves https with that certificate)"
        )
    return problems


def load_defaults() -> SiteConfig:
    """The defaults alone, whatever site file this machine has."""
    merged, problems = _merge(read_yaml(DEFAULTS_FILE), {})
    return SiteConfig(**_build(merged, problems))


def load_site_config(path: str | os.PathLike[str] | None = None) -> SiteConfig:
    """Defaults, overlaid with the site file (argument, $AIFACTORY_SITE_CONFIG, or /etc)."""
    chosen = path or os.environ.get(SITE_FILE_ENV) or (DEFAULT_SITE_FILE if DEFAULT_SITE_FILE.exists() else None)
    site = read_yaml(Path(chosen)) if chosen else {}
    merged, problems = _merge(read_yaml(DEFAULTS_FILE), site)
    sections = _build(merged, problems)
    if not problems:
        problems += front_problems(sections["hub"]) + environments_problems(sections["environments"])
        problems += [
            f"key 'singleuser.{name}': value {value!r} is not accepted; accepted: {accepted}"
            for name, value, accepted in sections["singleuser"].hooks.problems()
        ]
    if problems:
        where = f"site config {chosen}" if chosen else "site config defaults"
        raise SiteConfigError(f"{where} is not valid:\n" + "\n".join(f"  - {p}" for p in problems))
    return SiteConfig(**sections, source=str(chosen or "defaults"))
