"""Load a configuration file: YAML -> positions -> typed models -> cross-checks.

Every problem is collected and raised at once as a :class:`ConfigError`, each located as
``FILE:LINE: key.path: what is wrong``. Secret values are never echoed.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any

import pydantic
from pydantic import ValidationError

from orchestrator.config.checks import check_references
from orchestrator.config.checks import warnings as config_warnings
from orchestrator.config.models import AnyJob, Client, Config, JobBase, LocalBaie
from orchestrator.config.resolved import BaieSettings, HostSettings, RepositorySettings
from orchestrator.config.sitepart import all_site_jobs, site_part
from orchestrator.config.suggest import did_you_mean
from orchestrator.config.yamlread import MAX_BYTES, PathKey, Positions, format_path, read_yaml
from orchestrator.errors import ConfigError, ConfigProblem, UsageError

CONFIG_ENV = "HVBACKUP_CONFIG"

# Keys that would hold a secret in clear. Compared case-insensitively.
SECRET_KEYS = frozenset(
    {"password", "passphrase", "passwd", "pwd", "secret", "token", "api_key", "apikey",
     "client_secret", "private_key"}
)


@dataclass(frozen=True)
class JobRef:
    client_name: str
    job_name: str
    client: Client
    job: AnyJob

    @property
    def label(self) -> str:
        return f"{self.client_name}/{self.job_name}"


@dataclass
class LoadedConfig:
    """A valid configuration and where it came from."""

    config: Config
    path: Path
    positions: Positions
    warnings: list[ConfigProblem] = field(default_factory=list)
    _site_jobs: dict[str, frozenset[tuple[str, str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, value: str) -> Path:
        """A path from the file, relative paths taken from the config file's folder."""
        p = Path(os.path.expanduser(value))
        return Path(os.path.normpath(p if p.is_absolute() else self.base_dir / p))

    @property
    def state_dir(self) -> Path:
        if self.config.state_dir:
            return self.resolve(self.config.state_dir)
        return default_state_dir()

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL; a relative SQLite path is taken from the config file's folder."""
        url = self.config.database
        if not url:
            return f"sqlite:///{self.state_dir / 'hvbackup.db'}"
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            rest = url[len(prefix):]
            if rest and rest != ":memory:" and not Path(rest).is_absolute():
                return prefix + str(self.resolve(rest))
        return url

    def jobs(self) -> Iterator[JobRef]:
        for client_name, client in self.config.clients.items():
            for job_name, job in client.jobs.items():
                yield JobRef(client_name, job_name, client, job)

    def job(self, label: str) -> JobRef:
        """Find ``CLIENT/JOB``; raises :class:`UsageError` with suggestions."""
        client_name, _, job_name = label.partition("/")
        client = self.config.clients.get(client_name)
        if client is None:
            raise UsageError(f"no client {client_name!r} in {self.path}"
                             + did_you_mean(client_name, self.config.clients, listed_as="known"))
        job = client.jobs.get(job_name)
        if job is None:
            raise UsageError(f"no job {job_name!r} in client {client_name!r} of {self.path}"
                             + did_you_mean(job_name, client.jobs, listed_as="known"))
        return JobRef(client_name, job_name, client, job)

    def copies_of(self, client: Client, job: JobBase) -> list[str]:
        return list(job.copies or client.copies or [])

    def on_overrun_of(self, client: Client) -> str:
        """block or next_tier: the client's own choice, else the MSP's."""
        return client.quota.on_overrun or self.config.msp.quota.on_overrun

    def language_of(self, client: Client) -> str:
        return client.language or self.config.msp.language

    def site_part(self, site: str) -> dict[str, Any]:
        """What an agent of ``site`` may receive (config/sitepart.py); UsageError if unknown."""
        return site_part(self.config, site)

    def site_jobs(self, site: str) -> frozenset[tuple[str, str]] | None:
        """``(client, job)`` of every job on ``site``, None when the site is not configured.
        Worked out once per site: the server asks it of every agent request, and a loaded
        configuration does not change (a new file is a new LoadedConfig)."""
        if not self._site_jobs:
            self._site_jobs.update(all_site_jobs(self.config))
        return self._site_jobs.get(site)

    # -- what each opener needs (config/resolved.py) ------------------------------------

    def host(self, label: str) -> HostSettings:
        """The host ``CLIENT/HOST``; raises UsageError when it is not configured."""
        client_name, _, host_name = label.partition("/")
        client = self.config.clients.get(client_name)
        if client is None or host_name not in client.hosts:
            known = [f"{c}/{h}" for c, cl in self.config.clients.items() for h in cl.hosts]
            raise UsageError(f"no host {label!r} in {self.path}"
                             + did_you_mean(label, known, listed_as="hosts"))
        host = client.hosts[host_name]
        simulated = host.simulated
        root = (self.resolve(simulated.data_dir) if simulated and simulated.data_dir
                else self.state_dir / "simulated" / client_name / host_name)
        winrm = host.winrm
        return HostSettings(
            label=label, host=host,
            jobs=tuple(j for j in client.jobs.values() if j.host == host_name),
            timezone=self.config.msp.timezone, simulated_root=root,
            winrm_ca_file=self.resolve(winrm.ca_file) if winrm and winrm.ca_file else None,
            password_file=(self.resolve(winrm.password_file)
                           if winrm and winrm.password_file else None))

    def baie(self, name: str, client: str) -> BaieSettings:
        """Baie ``name`` for ``client``'s repository; raises UsageError when it is unknown."""
        settings = self.config.baies.get(name)
        if settings is None:
            raise UsageError(f"no baie {name!r} in {self.path}"
                             + did_you_mean(name, self.config.baies, listed_as="baies"))
        if isinstance(settings, LocalBaie):
            return BaieSettings(name, client, settings, self.resolve(settings.path), None, None)
        maintenance = settings.maintenance
        return BaieSettings(name, client, settings, None, self.resolve(settings.key_file),
                            self.resolve(settings.known_hosts),
                            self.resolve(maintenance.key_file) if maintenance else None)

    def writer_key(self, client: str) -> Path:
        """Where this orchestrator (or agent) keeps ``client``'s writer key."""
        return self.state_dir / "keys" / f"{client}.writer"

    def repository(self, client: str, baie: str) -> RepositorySettings:
        """``client``'s repository on ``baie``, with the keys that write it."""
        settings = self.config.clients.get(client)
        if settings is None:
            raise UsageError(f"no client {client!r} in {self.path}"
                             + did_you_mean(client, self.config.clients, listed_as="known"))
        encryption = settings.encryption
        escrow_file = self.config.msp.escrow_public_key_file
        escrow = bool(encryption and encryption.escrow)
        return RepositorySettings(
            client=client, baie=self.baie(baie, client),
            public_key=self.resolve(encryption.public_key_file) if encryption else None,
            escrow_key=self.resolve(escrow_file) if escrow and escrow_file else None,
            escrow_missing=escrow and not escrow_file,
            writer_key=self.writer_key(client),
            cache=self.state_dir / "cache" / client)


def default_state_dir() -> Path:
    """The platform's place for service state when the config does not say."""
    if os.name == "nt":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "hvbackup"
    if os.geteuid() == 0:
        return Path("/var/lib/hvbackup")
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "hvbackup"


def config_path_from(arg: str | None) -> Path:
    """The config file named by ``-c`` or by ``HVBACKUP_CONFIG``; raises UsageError if none."""
    value = arg or os.environ.get(CONFIG_ENV)
    if not value:
        raise UsageError(f"no configuration file: pass -c FILE or set {CONFIG_ENV}")
    return Path(value)


def load_config(path: Path | str) -> LoadedConfig:
    """Read and validate ``path``. Raises :class:`ConfigError` listing every problem."""
    path = Path(path)
    shown = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)  # never more: a huge file is refused, not read whole
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(shown, 0, "", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigProblem(shown, 0, "", "is a folder, not a file")]) from None
    except OSError as exc:
        problem = ConfigProblem(shown, 0, "", f"cannot be read: {exc.strerror}")
        raise ConfigError([problem]) from None
    if len(raw) > MAX_BYTES:
        size = path.stat().st_size
        raise ConfigError([ConfigProblem(
            shown, 0, "", f"the file holds {size / 1024 / 1024:.1f} MB: a configuration is at "
                          f"most {MAX_BYTES // 1024 // 1024} MB")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([_not_utf8(shown, raw, exc)]) from None
    return load_config_text(text, shown, base=path)


def _not_utf8(shown: str, raw: bytes, exc: UnicodeDecodeError) -> ConfigProblem:
    """Where the first byte that is not UTF-8 is: its line, and its column in characters."""
    line_start = raw.rfind(b"\n", 0, exc.start) + 1
    line = raw.count(b"\n", 0, exc.start) + 1
    column = len(raw[line_start:exc.start].decode("utf-8", "replace")) + 1
    byte = raw[exc.start]
    guess = " (saved as Latin-1 or Windows-1252?)" if byte >= 0x80 else ""
    return ConfigProblem(shown, line, "", f"not UTF-8 text: byte 0x{byte:02x} at column "
                                          f"{column} is not UTF-8{guess}; save the file as "
                                          "UTF-8")


def load_config_text(text: str, filename: str, base: Path | None = None) -> LoadedConfig:
    doc = read_yaml(text, filename)
    if doc.data is None and doc.problems:
        raise ConfigError(doc.problems)
    positions = doc.positions
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem(filename, positions.line_of(()), "",
                           "the file must be a mapping of keys (version:, msp:, baies:, ...)")]
        )
    problems: list[ConfigProblem] = list(doc.problems)
    data = _strip_secrets(data, (), positions, filename, problems)
    problems.extend(check_references(data, positions, filename))
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(_translate(exc, data, positions, filename))
    if problems:
        raise ConfigError(_dedupe(problems))
    assert config is not None
    loaded = LoadedConfig(config, (base or Path(filename)).resolve(), positions)
    loaded.warnings = config_warnings(loaded, filename)
    return loaded


def _dedupe(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return list(dict.fromkeys(problems))


def _strip_secrets(
    node: Any, path: PathKey, positions: Positions, filename: str, problems: list[ConfigProblem]
) -> Any:
    """Report and remove keys that hold a secret in clear; the value is never shown."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            child = (*path, str(key))
            if str(key).lower() in SECRET_KEYS:
                problems.append(
                    ConfigProblem(
                        filename, positions.line_of(child, key=True), format_path(child),
                        "a secret must not be written in the configuration: put it in an "
                        "environment variable and write 'password_env: VARIABLE_NAME', or in a "
                        "file only the service can read and write 'password_file: /path'",
                    )
                )
                continue
            out[key] = _strip_secrets(value, child, positions, filename, problems)
        return out
    if isinstance(node, list):
        return [
            _strip_secrets(v, (*path, i), positions, filename, problems)
            for i, v in enumerate(node)
        ]
    return node


# -- pydantic errors -> located problems -----------------------------------------------------

def _translate(
    exc: ValidationError, data: Any, positions: Positions, filename: str
) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        path = _data_path(err["loc"], data)
        kind = err["type"]
        if kind == "union_tag_invalid":
            path = (*path, "type")
        # A missing key is shown at its parent's key; anything else at its own key's line.
        line = positions.line_of(path[:-1] if kind == "missing" else path, key=True)
        problems.append(
            ConfigProblem(filename, line, format_path(path), _message(err, path, data))
        )
    return problems


def _data_path(loc: tuple[int | str, ...], data: Any) -> PathKey:
    """Map a pydantic location to a path in the data, dropping union tags and validator names."""
    path: list[str | int] = []
    current = data
    for elem in loc:
        in_dict = isinstance(current, dict) and elem in current
        in_list = (isinstance(current, list) and isinstance(elem, int)
                   and 0 <= elem < len(current))
        if in_dict or in_list:
            path.append(elem)
            current = current[elem]
        elif isinstance(current, dict) and elem == current.get("type"):
            continue  # discriminated union tag
        elif isinstance(elem, str) and ("[" in elem or elem in {"str", "int", "none"}):
            continue  # validator or union member name
        else:
            path.append(elem)  # a missing key: keep it so the message names it
            current = None
    return tuple(path)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(err: Any, path: PathKey, data: Any) -> str:
    kind: str = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(path[-1])
        hint = did_you_mean(key, sorted(_known_keys(path[:-1], data)), listed_as="allowed here")
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        return f"missing required key {path[-1]!r}" if path else "missing required key"
    if kind == "union_tag_invalid":
        return (f"unknown type {ctx.get('tag')!r}: expected one of "
                f"{ctx.get('expected_tags')}")
    if kind == "union_tag_not_found":
        return "missing key 'type' (one of the known types must be named)"
    if kind in {"value_error", "assertion_error"}:
        msg = str(err["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        return msg
    if kind == "literal_error":
        return f"{_shown(value)} is not allowed: expected {ctx.get('expected')}"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters (got {len(value)})"
    if kind == "finite_number":
        return f"must be a finite number (got {_shown(value)})"
    bounds = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
              "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}
    if kind in bounds:
        key, words = bounds[kind]
        return f"must be {words} {ctx.get(key)} (got {_shown(value)})"
    type_names = {
        "int_type": "a whole number", "float_type": "a number", "string_type": "text",
        "bool_type": "true or false", "list_type": "a list", "dict_type": "a mapping of keys",
        "model_type": "a mapping of keys", "int_from_float": "a whole number",
    }
    if kind in type_names:
        return f"expected {type_names[kind]}, got {_describe_type(value)} ({_shown(value)})"
    return f"{err['msg']} (got {_shown(value)})"


def _describe_type(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        str: "text", int: "a whole number", float: "a number", bool: "true/false",
        list: "a list", dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _known_keys(path: PathKey, data: Any) -> list[str]:
    """The keys a model accepts at ``path`` (for "did you mean"), following data for unions."""
    annotation: Any = Config
    current = data
    for elem in path:
        annotation = _child_annotation(annotation, elem, current)
        if annotation is None:
            return []
        if isinstance(current, dict):
            current = current.get(elem)
        elif isinstance(current, list) and isinstance(elem, int) and elem < len(current):
            current = current[elem]
        else:
            current = None
    model = _pick_model(annotation, current)
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _pick_model(annotation: Any, value: Any) -> type[pydantic.BaseModel] | None:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, UnionType):
        models = [a for a in typing.get_args(annotation)
                  if isinstance(a, type) and issubclass(a, pydantic.BaseModel)]
        tag = value.get("type") if isinstance(value, dict) else None
        for m in models:
            field_ = m.model_fields.get("type")
            if field_ is not None and tag in typing.get_args(field_.annotation):
                return m
        return models[0] if len(models) == 1 else None
    return None


def _child_annotation(annotation: Any, elem: str | int, value: Any) -> Any:
    """The annotation of ``elem`` inside ``value``, a value of type ``annotation``."""
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin is dict:
        return typing.get_args(annotation)[1]
    if origin is list:
        return typing.get_args(annotation)[0]
    model = _pick_model(annotation, value)
    if model is None or not isinstance(elem, str):
        return None
    for name, f in model.model_fields.items():
        if elem in (name, f.alias):
            return f.annotation
    return None
