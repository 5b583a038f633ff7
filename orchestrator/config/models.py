"""The configuration as typed models, with every default in one place.

Field names are the YAML keys. Models are strict: a wrong type is an error, not a guess, and an
unknown key is an error (see :mod:`orchestrator.config.load` for how problems are reported).
Cross-references (a job's host, copies naming baies, ...) are checked in
:mod:`orchestrator.config.checks`, after each part is valid on its own.
"""

from __future__ import annotations

import itertools
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
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from orchestrator.retention.policy import RetentionPolicy
from orchestrator.schedule.spec import Schedule, parse_schedule

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# Longest text any value may be: a Windows path with the \\?\ prefix (Microsoft, "Maximum
# Path Length Limitation": about 32,767 characters). Names have tighter limits below.
MAX_TEXT = 32767
DISPLAY_NAME_MAX = 200  # what a report's subject line and the dashboard can show
VM_NAME_MAX = 100  # Hyper-V Manager refuses longer VM names
SQL_NAME_MAX = 128  # sysname: nvarchar(128), SQL Server's limit for a database name
QUOTA_GB_MAX = 1_000_000  # a petabyte
MBPS_MAX = 400_000  # 400 Gbit/s, the fastest Ethernet


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              use_attribute_docstrings=True, str_max_length=MAX_TEXT)


def _database_url(value: str) -> str:
    """A URL SQLAlchemy parses, for a backend the history supports; the password, if the URL
    holds one, is never shown."""
    try:
        url = make_url(value)
    except ArgumentError:
        shown = re.sub(r":[^:@/]*@", ":***@", value)[:60]
        raise ValueError(f"{shown!r} is not a database URL (e.g. "
                         "sqlite:///var/lib/hvbackup/hvbackup.db or "
                         "postgresql+psycopg://hvbackup@db.msp.example/hvbackup)") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        shown = url.render_as_string(hide_password=True)
        raise ValueError(f"{shown!r}: the history lives in SQLite or PostgreSQL "
                         "(sqlite:///PATH or postgresql+psycopg://USER@HOST/DB)")
    return value


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
VmNames = Annotated[list[Annotated[str, Field(min_length=1, max_length=VM_NAME_MAX)]],
                    Field(min_length=1), AfterValidator(_unique)]
SqlNames = Annotated[list[Annotated[str, Field(min_length=1, max_length=SQL_NAME_MAX)]],
                     Field(min_length=1), AfterValidator(_unique)]
DisplayName = Annotated[str, Field(min_length=1, max_length=DISPLAY_NAME_MAX)]
Language = Literal["fr", "en"]


class SecretRef(Model):
    """A secret is named, never written: an environment variable or a file."""

    password_env: EnvName | None = None
    """Name of the environment variable that holds the password."""
    password_file: str | None = None
    """File whose first line is the password (readable by the service only)."""

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self

    def has_secret(self) -> bool:
        return bool(self.password_env or self.password_file)


def _increasing(values: list[float]) -> list[float]:
    for before, after in itertools.pairwise(values):
        if after <= before:
            raise ValueError(f"tiers must increase: {after:g} comes after {before:g}")
    return values


OnOverrun = Literal["block", "next_tier"]
VolumeGb = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class QuotaPolicy(Model):
    on_overrun: OnOverrun = "block"
    """What happens once a client has stayed 10 % over its subscribed volume past its 30 days:
    block (new backups stop with an explicit ECHEC "quota dépassé") or next_tier (backups go
    on; the subscribed volume becomes the smallest of `msp.volume_tiers_gb` that holds the
    data, billed from the following month).
    """


class ClientQuotaPolicy(Model):
    on_overrun: OnOverrun | None = None
    """block or next_tier for this client (default: `msp.quota.on_overrun`)."""


class Msp(Model):
    name: DisplayName
    """The MSP's name, as the clients read it in reports."""
    hotline: list[Email] = Field(min_length=1)
    """Addresses of the hotline: alerts, the morning summary, missing reports."""
    phone: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[0-9+ ().-]+$")] | None \
        = None
    """The hotline's phone number, as the clients read it at the end of their reports."""
    timezone: TimezoneField = ZoneInfo("Europe/Paris")
    """Time zone of schedules, report dates and the dashboard."""
    language: Language = "fr"
    """Default language of reports and the dashboard (a client may have its own)."""
    escrow_public_key_file: str | None = None
    """The MSP escrow public key (`hvbackup keys init --escrow`), for clients with `escrow: true`.
    """
    digest_deadline: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "08:00"
    """Time (HH:MM) by which every client's report of the night must have gone out; later, an
    alert.
    """
    dashboard_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    """Public address of the dashboard (e.g. `https://sauvegardes.msp.example`): alerts link
    to the failed run's page and to the runbook of its error code there.
    """
    quota: QuotaPolicy = Field(default_factory=QuotaPolicy)
    """What the contracts say about a client over its subscribed volume (each client may say
    otherwise under its own `quota:`)."""
    volume_tiers_gb: Annotated[list[VolumeGb], Field(min_length=1),
                               AfterValidator(_increasing)] | None = None
    """The volumes the MSP sells, GB, increasing (e.g. `[100, 250, 500, 1000]`); needed by
    clients with `quota.on_overrun: next_tier`, whose `quota_gb` must be one of them."""
    heartbeat_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    """URL pinged (HTTP GET) after every scheduler cycle, healthchecks-style, so that a dead
    orchestrator is noticed by something outside it; `/fail` is added when a cycle failed.
    """


class Smtp(SecretRef):
    host: str = Field(min_length=1)
    """The mail relay."""
    port: int = Field(default=587, ge=1, le=65535)
    """Its port (587 STARTTLS, 465 TLS, 25 plain)."""
    security: Literal["starttls", "tls", "none"] = "starttls"
    """starttls, tls (implicit, port 465) or none; none with a username only to a relay on
    this machine (localhost, 127.0.0.1, ::1): elsewhere the password would cross the network
    in clear."""
    username: str | None = None
    """Login on the relay (then password_env or password_file)."""
    from_: Annotated[str, AfterValidator(_sender)] = Field(alias="from")
    """Sender, e.g. "Sauvegardes <sauvegardes@msp.example>"."""
    timeout_s: int = Field(default=30, ge=1, le=600)
    """Seconds before a connection or command to the relay is given up."""
    ca_file: str | None = None  # a private CA for the relay's certificate
    """A private CA for the relay's certificate."""

    @model_validator(mode="after")
    def _auth_complete(self) -> Smtp:
        if self.username and not self.has_secret():
            raise ValueError("username is set but no password_env or password_file")
        return self


class Bandwidth(Model):
    sustained_mbps: float = Field(gt=0, le=MBPS_MAX, allow_inf_nan=False)
    """Sustained upload limit, Mbit/s."""
    burst_mbps: float | None = Field(default=None, gt=0, le=MBPS_MAX, allow_inf_nan=False)
    """Short bursts up to this rate, Mbit/s (at least sustained_mbps)."""

    @model_validator(mode="after")
    def _burst_above_sustained(self) -> Bandwidth:
        if self.burst_mbps is not None and self.burst_mbps < self.sustained_mbps:
            raise ValueError("burst_mbps must be at least sustained_mbps")
        return self


class SftpMaintenance(Model):
    user: str = Field(min_length=1)
    """The maintenance account (scripts/baie-setup.sh --client makes ``hvb-<client>-maint``)."""
    key_file: str = Field(min_length=1)
    """The central server's private SSH key for it (never on a site agent)."""


class SftpBaie(Model):
    type: Literal["sftp"]
    """sftp: a baie reached over SSH (OpenSSH sshd)."""
    host: str = Field(min_length=1)
    """Address of the baie."""
    port: int = Field(default=22, ge=1, le=65535)
    """SSH port."""
    user: str = Field(min_length=1)
    """SFTP account (chrooted, key-only: see docs/baie-setup.md)."""
    key_file: str = Field(min_length=1)
    """The orchestrator's private SSH key for this baie."""
    known_hosts: str = Field(min_length=1)
    """known_hosts file holding the baie's host key (never accepted blindly)."""
    path: str = Field(min_length=1)
    """Folder on the baie under which each client has its repository."""
    bandwidth: Bandwidth | None = None
    """Upload limit towards this baie."""
    connections: int = Field(default=4, ge=1, le=32)
    """SSH connections used in parallel for uploads."""
    append_only: bool = False
    """The account may only add files (a site agent's access, made by scripts/baie-setup.sh
    --client): files are written under their final names, leases expire instead of being
    removed, and each night a canary checks that deleting and overwriting are refused. The
    maintenance (retention, prune) needs the full access: ``maintenance``."""
    maintenance: SftpMaintenance | None = None
    """The full access to the same folder that the central server's maintenance uses
    (retention and prune) when ``append_only`` is set; without it nothing is forgotten nor
    pruned on this baie."""


class LocalBaie(Model):
    type: Literal["local"]
    """local: a mounted folder (disk array, NFS/SMB mount) on the orchestrator."""
    path: str = Field(min_length=1)
    """The mounted folder; it must exist (an unmounted array is an error, never a silent write to
    the system disk).
    """
    bandwidth: Bandwidth | None = None
    """Write limit (rarely useful locally)."""


Baie = Annotated[SftpBaie | LocalBaie, Field(discriminator="type")]


class Encryption(Model):
    public_key_file: str = Field(min_length=1)
    """The client's public key (`hvbackup keys init`); its private key stays with the client."""
    escrow: bool = False
    """Also seal the data to the MSP escrow key (the client's written consent)."""


class WinrmSettings(SecretRef):
    port: int = Field(default=5986, ge=1, le=65535)
    """WinRM port (5986 for HTTPS)."""
    scheme: Literal["https", "http"] = "https"
    """https (default) or http (test labs only)."""
    auth: Literal["negotiate", "kerberos", "ntlm", "credssp"] = "negotiate"
    """negotiate, kerberos, ntlm or credssp."""
    username: str | None = None
    """Account on the host (the dedicated account made by Initialize-HvbHost.ps1)."""
    ca_file: str | None = None
    """CA that signed the host's WinRM certificate (exported by Initialize-HvbHost.ps1)."""
    cert_validation: bool = True
    """Check the host's certificate (leave on)."""
    configuration_name: str | None = None
    """JEA endpoint to connect to (Initialize-HvbHost.ps1 registers `hvbackup`)."""
    operation_timeout_s: int = Field(default=20, ge=5, le=600)
    """WinRM operation timeout, seconds (below read_timeout_s)."""
    read_timeout_s: int = Field(default=30, ge=10, le=900)
    """HTTP read timeout, seconds."""
    connect_retries: int = Field(default=3, ge=0, le=20)
    """Connection attempts before the host is declared unreachable."""

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

    kind: Literal["guest-vss-failure", "checkpoint-failure", "merge-stuck",
                  "leftover-checkpoint", "unreachable", "staging-full",
                  "verifyonly-failure", "slow", "expose-failure"]
    """The failure to produce."""
    target: str | None = None
    """The VM, database or path it hits (all when absent)."""
    dates: list[Annotated[date, Field(strict=False)]] = Field(default_factory=list)
    """Nights it happens (MSP time zone); every night when empty. (An ISO text is taken
    too: a site's part travels as JSON, which has no dates.)"""
    delay_s: float = Field(default=2.0, ge=0, le=3600)
    """For `slow`: seconds added to each call."""


class SimulatedSettings(Model):
    """Settings of a simulated host (demo and tests); the simulator reads them."""

    data_dir: str | None = None
    """Where the simulated host keeps its disks, databases and shares."""
    seed: int = 1
    """Seed of the simulated data (same seed, same data)."""
    vm_disk_mb: int = Field(default=256, ge=1, le=65536)
    """Size of each simulated VM disk, MB."""
    daily_change_percent: float = Field(default=2.0, ge=0, le=100)
    """Share of each disk rewritten every night."""
    share_files: int = Field(default=200, ge=1, le=100000)
    """Files in each simulated share."""
    share_large_files_mb: list[Annotated[int, Field(ge=1, le=65536)]] = Field(
        default_factory=list)
    """Sizes (MB) of large files in each simulated share beside the small ones, taken in turn
    as a mailbox archive (.pst, grows most days), a ZIP archive (changes now and then) and an
    ISO (never changes).
    """
    sql_database_mb: list[Annotated[int, Field(ge=1, le=1048576)]] = Field(
        default_factory=lambda: [2], min_length=1)
    """Sizes (MB) of the simulated SQL Server databases, in the order of their names (COMPTA,
    PAIE for `all`); the last size is used for the rest. Each grows a little every day.
    """
    sql_edition: Literal["standard", "web", "enterprise", "developer", "express"] = "standard"
    """Edition of the simulated SQL Server instances (web and express cannot compress backups)."""
    faults: list[SimulatedFault] = Field(default_factory=list)
    """Failures to inject."""
    jea: bool = False
    """Reached as through the JEA endpoint with the account onboarding makes (no
    administrator): only the per-run shares can be read, not drive paths, and checkpoint mode
    is refused (docs/lab/shares.md).
    """


CENTRAL_SITE = "central"  # the central server's own site: declared by nobody, always there


class Site(Model):
    """A place where an agent runs its site's jobs (docs/agents.md)."""

    name: DisplayName | None = None
    """The site as the hotline reads it (e.g. "ACME, siège de Lyon"; default: its key)."""
    heartbeat_minutes: int = Field(default=15, ge=1, le=1440)
    """Minutes without news from the site's agent after which the hotline is told."""


class Host(Model):
    address: str = Field(min_length=1)
    """DNS name or IP address of the Hyper-V host."""
    site: str = CENTRAL_SITE
    """The site whose agent reaches this host (a key of `sites`); default `central`, the
    central server itself."""
    transport: Literal["winrm", "simulated", "local"] = "winrm"
    """winrm (production), simulated (demo, tests) or local (this machine's folders)."""
    winrm: WinrmSettings | None = None
    """How to reach the host over WinRM."""
    simulated: SimulatedSettings | None = None
    """Settings of a simulated host."""
    staging_dir: str = "D:\\hvbackup-staging"
    """Folder on the host for SQL dumps and exports (needs free space)."""


class Retention(Model):
    keep_days: int | None = Field(default=None, ge=1, le=3660)
    """Keep every restore point of the last N days (rolling)."""
    keep_last: int | None = Field(default=None, ge=1, le=10000)
    """Keep the N newest restore points."""
    keep_daily: int | None = Field(default=None, ge=1, le=3660)
    """Keep the last restore point of each of the last N days that have one."""
    keep_weekly: int | None = Field(default=None, ge=1, le=520)
    """Keep the last restore point of each of the last N weeks."""
    keep_monthly: int | None = Field(default=None, ge=1, le=240)
    """Keep the last restore point of each of the last N months."""

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
    """The client's host (a key of its `hosts`)."""
    schedule: ScheduleField
    """When: `daily HH:MM`, `weekdays HH:MM`, `weekends HH:MM`, `mon,wed,fri HH:MM`."""
    window_hours: float = Field(default=8, gt=0, le=24)
    """Hours after the scheduled time during which the run may start; later it is NON EXECUTEE."""
    retries: int = Field(default=2, ge=0, le=10)
    """Retries of a failed step that may succeed later (host busy, network)."""
    retention: Retention = Field(default_factory=_default_retention)
    """Restore points kept (default: keep_days 30)."""
    copies: list[str] | None = Field(default=None, min_length=1)
    """Baies holding the copies, first one written by the backup (default: the client's)."""
    enabled: bool = True
    """false: the job is kept but not run (nor expected)."""
    compression_level: int = Field(default=3, ge=1, le=19)
    """zstd level (1 fast to 19 small)."""

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
    """hyperv-vm: Hyper-V virtual machines, by production checkpoint."""
    vms: VmNames
    """VM names as Hyper-V shows them (at most 100 characters)."""
    consistency: Literal["application", "application-or-crash"] = "application"
    """application (VSS inside the guest, else ECHEC) or application-or-crash (falls back to
    crash-consistent, reported AVERTISSEMENT).
    """
    mode: Literal["checkpoint", "export"] = "checkpoint"
    """checkpoint (read the frozen disks) or export."""
    image_chunk_kib: Annotated[int, Field(ge=256, le=4096), AfterValidator(_chunk_kib)] = 512
    """Region size of disk images, KiB (256 to 4096, power of two). Whatever the size, a
    changed region sends only its changed 64 KiB blocks; smaller regions need more memory
    (keep 512 above a terabyte), larger ones restore in fewer reads. Changing it makes the
    next backup upload the whole image again.
    """


class SqlServerJob(JobBase):
    type: Literal["sql-server"]
    """sql-server: native COPY_ONLY dumps, verified."""
    instance: str = Field(min_length=1)
    """Instance, e.g. `SQL01\\COMPTA` or `MSSQLSERVER`."""
    databases: SqlNames
    """Database names (at most 128 characters), or `all` (user databases)."""
    exclude_databases: list[str] = Field(default_factory=list)
    """Names left out of `all`."""
    trust_server_certificate: bool = False
    """Accept the instance's self-signed certificate."""
    command_timeout_s: int = Field(default=3600, ge=60, le=86400)
    """Seconds a dump may take."""
    backup_compression: bool = False
    """Ask SQL Server for compressed dumps (`WITH COMPRESSION`; Standard, Enterprise and
    Developer editions). Off by default: an uncompressed dump changes only where pages changed,
    so a night sends only those (deduplicated, then compressed by hvbackup), whereas a
    compressed dump is a new stream every night, sent whole (see docs/decisions.md). Turn it on
    only when the staging volume lacks room for an uncompressed dump.
    """


class FilesJob(JobBase):
    type: Literal["files"]
    """files: folders and shares, from a shadow copy."""
    paths: NonEmptyNames
    """Folders on the host (e.g. `D:\\Partages`)."""
    exclude: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """Glob patterns left out."""
    vss: bool | None = None  # None: shadow copies on Windows hosts, none on a local host
    """Read from a shadow copy (default: yes on Windows hosts, no on a local host)."""
    prepare: Literal["orchestrator"] | None = None
    """`orchestrator`: this job is the orchestrator's self-backup; its first path is filled
    before each run with the configuration, a copy of the history and the key material the
    orchestrator holds, and emptied once read (see docs/restore-orchestrator.md). Needs a
    `transport: local` host.
    """


AnyJob = HypervVmJob | SqlServerJob | FilesJob
Job = Annotated[AnyJob, Field(discriminator="type")]


class Client(Model):
    name: DisplayName
    """The client's name as it reads it in its reports."""
    contacts: list[Email] = Field(min_length=1)
    """Who receives the daily report."""
    language: Language | None = None
    """fr or en (default: the MSP's)."""
    quota_gb: float | None = Field(default=None, gt=0, le=QUOTA_GB_MAX, allow_inf_nan=False)
    """Subscribed volume, GB (more than 0, at most 1000000): 10 % over it, the client is told
    and has 30 days."""
    quota: ClientQuotaPolicy = Field(default_factory=ClientQuotaPolicy)
    """What happens after those 30 days for this client (`on_overrun`)."""
    encryption: Encryption | None = None
    """The client's key (required before its first backup)."""
    copies: list[str] | None = Field(default=None, min_length=1)
    """Baies of its copies, the first one written by backups (two sites for the contract)."""
    hosts: dict[str, Host] = Field(default_factory=dict)
    """Its Hyper-V hosts, by name."""
    jobs: dict[str, Job] = Field(default_factory=dict)
    """Its backup jobs, by name."""

    @field_validator("copies")
    @classmethod
    def _copies_unique(cls, value: list[str] | None) -> list[str] | None:
        return _unique(value) if value is not None else None


class Config(Model):
    version: Literal[1]
    """Version of this file's format: 1."""
    state_dir: str | None = None
    """Where the orchestrator keeps its state (history, caches); default /var/lib/hvbackup for root,
    ~/.local/state/hvbackup otherwise, %PROGRAMDATA%\\hvbackup on Windows.
    """
    database: Annotated[str, AfterValidator(_database_url)] | None = None
    """SQLAlchemy URL of the history: `sqlite:///PATH` or `postgresql+psycopg://USER@HOST/DB`
    (default: SQLite in state_dir)."""
    msp: Msp
    """The MSP itself."""
    smtp: Smtp | None = None
    """The mail relay (no relay: messages go to the outbox folder only)."""
    baies: dict[str, Baie] = Field(min_length=1)
    """The disk arrays, by name."""
    sites: dict[str, Site] = Field(default_factory=dict)
    """Sites with an agent, by key (letters, digits, - and _); hosts say which with `site:`.
    The central server's own site, `central`, needs no declaration."""
    clients: dict[str, Client] = Field(default_factory=dict)
    """The clients, by key (letters, digits, - and _)."""
