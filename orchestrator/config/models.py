"""The configuration as typed models, with every default in one place.

Field names are the YAML keys. Models are strict: a wrong type is an error, not a guess, and an
unknown key is an error (see :mod:`orchestrator.config.load` for how problems are reported).
Cross-references (a job's host, copies naming baies, ...) are checked in
:mod:`orchestrator.config.checks`, after each part is valid on its own.
"""

from __future__ import annotations

import re
from datetime import date
from email.utils import parseaddr
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from orchestrator.retention.policy import RetentionPolicy
from orchestrator.schedule.spec import Schedule, parse_schedule

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _sender(value: str) -> str:
    _name, address = parseaddr(value)
    if not address or not _EMAIL.match(address):
        raise ValueError(f'{value!r} is not a sender address (e.g. "Sauvegardes <x@msp.example>")')
    return value


def _schedule(value: Any) -> Schedule:
    if isinstance(value, Schedule):
        return value
    return parse_schedule(value)


def _timezone(value: Any) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a timezone name such as Europe/Paris")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (e.g. Europe/Paris)") from None


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for v in values:
        if v.lower() in seen:
            raise ValueError(f"{v!r} is listed twice")
        seen.add(v.lower())
    return values


Email = Annotated[str, AfterValidator(_email)]
EnvName = Annotated[str, AfterValidator(_env_name)]
ScheduleField = Annotated[
    Schedule,
    PlainValidator(_schedule),
    PlainSerializer(lambda s: s.text, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["daily 22:00", "weekdays 21:00"]}),
]
TimezoneField = Annotated[
    ZoneInfo,
    PlainValidator(_timezone),
    PlainSerializer(lambda z: z.key, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["Europe/Paris"]}),
]
NonEmptyNames = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1),
                          AfterValidator(_unique)]
Language = Literal["fr", "en"]


class SecretRef(Model):
    """A secret is named, never written: an environment variable or a file."""

    password_env: EnvName | None = None
    password_file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self

    def has_secret(self) -> bool:
        return bool(self.password_env or self.password_file)


class Msp(Model):
    name: str = Field(min_length=1)
    hotline: list[Email] = Field(min_length=1)
    timezone: TimezoneField = ZoneInfo("Europe/Paris")
    language: Language = "fr"
    escrow_public_key_file: str | None = None
    digest_deadline: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "08:00"


class Smtp(SecretRef):
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    from_: Annotated[str, AfterValidator(_sender)] = Field(alias="from")
    timeout_s: int = Field(default=30, ge=1, le=600)
    ca_file: str | None = None  # a private CA for the relay's certificate

    @model_validator(mode="after")
    def _auth_complete(self) -> Smtp:
        if self.username and not self.has_secret():
            raise ValueError("username is set but no password_env or password_file")
        return self


class Bandwidth(Model):
    sustained_mbps: float = Field(gt=0)
    burst_mbps: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _burst_above_sustained(self) -> Bandwidth:
        if self.burst_mbps is not None and self.burst_mbps < self.sustained_mbps:
            raise ValueError("burst_mbps must be at least sustained_mbps")
        return self


class SftpBaie(Model):
    type: Literal["sftp"]
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(min_length=1)
    key_file: str = Field(min_length=1)
    known_hosts: str = Field(min_length=1)
    path: str = Field(min_length=1)
    bandwidth: Bandwidth | None = None
    connections: int = Field(default=4, ge=1, le=32)


class LocalBaie(Model):
    type: Literal["local"]
    path: str = Field(min_length=1)
    bandwidth: Bandwidth | None = None


Baie = Annotated[SftpBaie | LocalBaie, Field(discriminator="type")]


class Encryption(Model):
    public_key_file: str = Field(min_length=1)
    escrow: bool = False


class WinrmSettings(SecretRef):
    port: int = Field(default=5986, ge=1, le=65535)
    scheme: Literal["https", "http"] = "https"
    auth: Literal["negotiate", "kerberos", "ntlm", "credssp"] = "negotiate"
    username: str | None = None
    ca_file: str | None = None
    cert_validation: bool = True
    configuration_name: str | None = None
    operation_timeout_s: int = Field(default=20, ge=5, le=600)
    read_timeout_s: int = Field(default=30, ge=10, le=900)
    connect_retries: int = Field(default=3, ge=0, le=20)

    @model_validator(mode="after")
    def _timeouts(self) -> WinrmSettings:
        if self.operation_timeout_s >= self.read_timeout_s:
            raise ValueError(
                f"operation_timeout_s ({self.operation_timeout_s}) must be below "
                f"read_timeout_s ({self.read_timeout_s}), or every long call fails"
            )
        return self


class SimulatedFault(Model):
    """A failure the simulated host produces, on given dates (MSP timezone) or always."""

    kind: Literal["guest-vss-failure", "merge-stuck", "leftover-checkpoint", "unreachable",
                  "staging-full", "verifyonly-failure", "slow"]
    target: str | None = None
    dates: list[date] = Field(default_factory=list)
    delay_s: float = Field(default=2.0, ge=0, le=3600)


class SimulatedSettings(Model):
    """Settings of a simulated host (demo and tests); the simulator reads them."""

    data_dir: str | None = None
    seed: int = 1
    vm_disk_mb: int = Field(default=256, ge=1, le=65536)
    daily_change_percent: float = Field(default=2.0, ge=0, le=100)
    share_files: int = Field(default=200, ge=1, le=100000)
    faults: list[SimulatedFault] = Field(default_factory=list)


class Host(Model):
    address: str = Field(min_length=1)
    transport: Literal["winrm", "simulated", "local"] = "winrm"
    winrm: WinrmSettings | None = None
    simulated: SimulatedSettings | None = None
    staging_dir: str = "D:\\hvbackup-staging"


class Retention(Model):
    keep_days: int | None = Field(default=None, ge=1, le=3660)
    keep_last: int | None = Field(default=None, ge=1, le=10000)
    keep_daily: int | None = Field(default=None, ge=1, le=3660)
    keep_weekly: int | None = Field(default=None, ge=1, le=520)
    keep_monthly: int | None = Field(default=None, ge=1, le=240)

    @model_validator(mode="after")
    def _something_kept(self) -> Retention:
        if self.policy().is_empty():
            raise ValueError("keeps nothing: set keep_days, or keep_daily / keep_weekly / ...")
        return self

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            keep_days=self.keep_days, keep_last=self.keep_last, keep_daily=self.keep_daily,
            keep_weekly=self.keep_weekly, keep_monthly=self.keep_monthly,
        )


def _default_retention() -> Retention:
    return Retention(keep_days=30)


class JobBase(Model):
    host: str = Field(min_length=1)
    schedule: ScheduleField
    window_hours: float = Field(default=8, gt=0, le=24)
    retries: int = Field(default=2, ge=0, le=10)
    retention: Retention = Field(default_factory=_default_retention)
    copies: list[str] | None = Field(default=None, min_length=1)
    enabled: bool = True
    compression_level: int = Field(default=3, ge=1, le=19)

    @field_validator("copies")
    @classmethod
    def _copies_unique(cls, value: list[str] | None) -> list[str] | None:
        return _unique(value) if value is not None else None


def _chunk_kib(value: int) -> int:
    if value & (value - 1):
        raise ValueError(f"{value} is not a power of two (256, 512, 1024, 2048 or 4096)")
    return value


class HypervVmJob(JobBase):
    type: Literal["hyperv-vm"]
    vms: NonEmptyNames
    consistency: Literal["application", "application-or-crash"] = "application"
    mode: Literal["checkpoint", "export"] = "checkpoint"
    image_chunk_kib: Annotated[int, Field(ge=256, le=4096), AfterValidator(_chunk_kib)] = 512


class SqlServerJob(JobBase):
    type: Literal["sql-server"]
    instance: str = Field(min_length=1)
    databases: NonEmptyNames
    exclude_databases: list[str] = Field(default_factory=list)
    trust_server_certificate: bool = False
    command_timeout_s: int = Field(default=3600, ge=60, le=86400)


class FilesJob(JobBase):
    type: Literal["files"]
    paths: NonEmptyNames
    exclude: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    vss: bool | None = None  # None: shadow copies on Windows hosts, none on a local host


AnyJob = HypervVmJob | SqlServerJob | FilesJob
Job = Annotated[AnyJob, Field(discriminator="type")]


class Client(Model):
    name: str = Field(min_length=1)
    contacts: list[Email] = Field(min_length=1)
    language: Language | None = None
    quota_gb: float | None = Field(default=None, ge=0)
    encryption: Encryption | None = None
    copies: list[str] | None = Field(default=None, min_length=1)
    hosts: dict[str, Host] = Field(default_factory=dict)
    jobs: dict[str, Job] = Field(default_factory=dict)

    @field_validator("copies")
    @classmethod
    def _copies_unique(cls, value: list[str] | None) -> list[str] | None:
        return _unique(value) if value is not None else None


class Config(Model):
    version: Literal[1]
    state_dir: str | None = None
    database: str | None = None
    msp: Msp
    smtp: Smtp | None = None
    baies: dict[str, Baie] = Field(min_length=1)
    clients: dict[str, Client] = Field(default_factory=dict)
