"""What travels between a site agent and the central server (/api/agent/v1, docs/agents.md).

The same models validate on both sides: the agent builds them from its spool, the server
refuses anything else (unknown keys, wrong types, text longer than the history's columns).
Times are UTC-aware. Nothing here ever holds a secret value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from orchestrator.findings import RunStatus

PREFIX = "/api/agent/v1"

Name = Annotated[str, Field(min_length=1, max_length=64)]
Version = Annotated[str, Field(min_length=1, max_length=40)]
Figure = Annotated[int, Field(ge=0)]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollIn(Message):
    token: Annotated[str, Field(min_length=1, max_length=200)]
    name: Annotated[str, Field(min_length=1, max_length=100,
                               pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    version: Version


class EnrollOut(Message):
    agent_token: str
    site: str
    name: str


class KnownSnapshot(Message):
    """A restore point of one of the site's jobs in the server's catalogue (whoever wrote
    it: this agent, one it replaced, or this agent before its state folder was put back)."""

    client: str
    job: str
    snapshot_id: str
    baie: str
    taken_at: AwareDatetime
    forgotten: bool = False  # let go by the server's retention (and pruned)


class ConfigOut(Message):
    site: str
    config: dict[str, Any]  # config/sitepart.py: the site's part, YAML keys
    # "client/job" -> since when the server expects it (the job's arrival in the server's
    # configuration, or its last change of schedule): the agent runs what the server awaits.
    expected_since: dict[str, AwareDatetime] = Field(default_factory=dict)
    # The server's catalogue of the site's restore points: the agent checks its baies against
    # it (a point it does not know would be "planted", one it knows gone "missing").
    snapshots: list[KnownSnapshot] = Field(default_factory=list)


class WriterKeysOut(Message):
    """The writer key of each client of the site (base64, as in ``<state_dir>/keys``): the
    server keeps every client's writer key and prunes with it; the agent writes with the same
    one, so that the repository it creates is the server's to maintain and the signer recorded
    in the client's key file (``keys init``) is the one that signs."""

    keys: dict[str, str]


class StepIn(Message):
    seq: Annotated[int, Field(ge=1)]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    object: Annotated[str, Field(max_length=200)] | None = None
    status: Annotated[str, Field(min_length=1, max_length=20)]
    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    bytes_read: Figure | None = None
    bytes_new: Figure | None = None
    bytes_sent: Figure | None = None
    files: Figure | None = None
    error_code: Annotated[str, Field(max_length=60)] | None = None
    error_message: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class EventIn(Message):
    at: AwareDatetime
    level: Annotated[str, Field(min_length=1, max_length=10)]
    message: str
    step_seq: Annotated[int, Field(ge=1)] | None = None  # the step it belongs to, if any


class SnapshotIn(Message):
    """A restore point the run committed on one of its job's baies: the server catalogues it
    as its own runs' (reports, dashboard, verify's check of what a baie lists)."""

    snapshot_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16,64}$")]
    baie: Name
    taken_at: AwareDatetime
    bytes_total: Figure | None = None
    files: Figure | None = None


class RunIn(Message):
    """A finished run of one of the site's jobs, whole: delivered once, keyed by ``uid``."""

    uid: Annotated[str, Field(min_length=1, max_length=40)]
    client: Name
    job: Name
    trigger: Literal["schedule", "manual", "dashboard"] = "schedule"
    request_id: int | None = None  # the run-now request it answers (GET /run-requests)
    scheduled_for: AwareDatetime
    window_ends_at: AwareDatetime | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime
    status: RunStatus
    consistency: Annotated[str, Field(max_length=20)] | None = None
    bytes_read: Figure | None = None
    bytes_new: Figure | None = None
    bytes_sent: Figure | None = None
    files: Figure | None = None
    error_code: Annotated[str, Field(max_length=60)] | None = None
    error_message: str | None = None
    script_code: Annotated[str, Field(max_length=60)] | None = None
    findings: list[dict[str, Any]] = Field(default_factory=list)
    sanity_flags: list[dict[str, Any]] = Field(default_factory=list)
    steps: Annotated[list[StepIn], Field(max_length=10_000)] = Field(default_factory=list)
    events: Annotated[list[EventIn], Field(max_length=100_000)] = Field(default_factory=list)
    snapshots: Annotated[list[SnapshotIn], Field(max_length=1000)] = Field(default_factory=list)


class RunOut(Message):
    uid: str
    recorded: bool  # False: that uid was delivered before; nothing was written again


class RunRequestOut(Message):
    id: int
    client: str
    job: str
    requested_by: str
    requested_at: datetime


class RunningJob(Message):
    client: Name
    job: Name
    run_uid: Annotated[str, Field(max_length=40)] | None = None
    step: Annotated[str, Field(max_length=100)] | None = None
    done_bytes: Figure | None = None
    total_bytes: Figure | None = None


class HeartbeatIn(Message):
    version: Version
    running: Annotated[list[RunningJob], Field(max_length=1000)] = Field(default_factory=list)
    queued_runs: Figure = 0  # runs in the spool not delivered yet


class HeartbeatOut(Message):
    site: str
    server_time: datetime
