"""One error tree for the whole orchestrator.

Every error carries three things a caller needs:

* ``message`` — the sentence a technician reads (which host, which file, what to check);
* ``permanent`` — ``True`` when retrying cannot help (bad credentials, a full baie, a broken
  config); retry wrappers stop at permanent errors;
* ``exit_code`` — what the ``hvbackup`` CLI exits with.

and a stable ``code`` (``HVB-...``) that reports, the dashboard and the runbooks refer to.

Library exceptions (pypsrp, paramiko, smbprotocol, SQLAlchemy, smtplib) are translated into
this tree at the adapter that talks to the library and never travel past it::

    HvbError                      exit 1   generic failure
    ├── UsageError                exit 2   bad command line
    │   └── TargetExists                   restore: files already there, no --overwrite
    ├── SecretMissing             exit 2   a *_env variable unset, a *_file unreadable
    ├── ConfigError               exit 2   invalid YAML configuration (lists every problem)
    ├── HostError                 exit 3   a Windows host or its scripts
    │   ├── HostUnreachable                retryable
    │   ├── HostAuthError                  permanent
    │   ├── HostTimeout                    retryable
    │   ├── ScriptFailed                   the script ran and reported an error code
    │   ├── ScriptOutputInvalid            permanent: the script broke its contract
    │   └── SourceError                    reading exposed files (local path, SMB)
    │       └── SourceDenied               permanent: one file or folder the account may
    │                                      not read (NTFS); named in the run, never fatal
    ├── StoreError                exit 4   the backup repository
    │   ├── RepositoryCorrupt              permanent
    │   ├── RestoreIncomplete              names refused (outside --to): the others restored
    │   ├── KeyMismatch                    permanent: wrong key file or passphrase
    │   └── ForgedRepository               permanent: not written by the client's orchestrator
    ├── BaieError                 exit 5   where repository files live
    │   ├── BaieUnreachable                retryable
    │   ├── BaieAuthError                  permanent (credentials, unknown host key)
    │   └── BaieFull                       permanent
    ├── HistoryError              exit 6   the history database
    │   └── SchemaOutOfDate                permanent: run `hvbackup db upgrade`
    ├── MailError                 exit 7   sending e-mail
    └── ServerError               exit 8   a site agent talking to the central server
        ├── ServerUnreachable              retryable: runs wait in the agent's spool
        └── ServerRefused                  permanent: token unknown, used, expired, revoked
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class HvbError(Exception):
    """Base of every error the orchestrator raises on purpose."""

    code = "HVB-ERROR"
    exit_code = 1
    permanent = True

    def __init__(self, message: str, *, permanent: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if permanent is not None:
            self.permanent = permanent

    def __str__(self) -> str:
        return self.message


class SecretMissing(HvbError):
    """A secret named by ``*_env`` / ``*_file`` cannot be read (the secret is never shown)."""

    code = "HVB-SECRET"
    exit_code = 2


class UsageError(HvbError):
    """The command line is wrong (missing argument, unknown client, ...)."""

    code = "HVB-USAGE"
    exit_code = 2


class TargetExists(UsageError):
    """``hvbackup restore``: files to restore are already in ``--to`` and ``--overwrite`` was
    not given (nor confirmed at the terminal); nothing was written."""

    code = "HVB-RESTORE-EXISTS"


@dataclass(frozen=True, order=True)
class ConfigProblem:
    """One thing wrong in a configuration file, located as precisely as possible."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(HvbError):
    """The configuration is invalid; ``problems`` lists every problem found, in file order."""

    code = "HVB-CONFIG"
    exit_code = 2

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems = sorted(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the configuration:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class HostError(HvbError):
    code = "HVB-HOST"
    exit_code = 3


class HostUnreachable(HostError):
    code = "HVB-HOST-UNREACHABLE"
    permanent = False


class HostAuthError(HostError):
    code = "HVB-HOST-AUTH"


class HostTimeout(HostError):
    code = "HVB-HOST-TIMEOUT"
    permanent = False


class ScriptFailed(HostError):
    """A host script ran and returned ``{"ok": false, "error": {...}}``."""

    code = "HVB-SCRIPT-FAILED"

    def __init__(self, message: str, *, script_code: str, permanent: bool = True) -> None:
        super().__init__(message, permanent=permanent)
        self.script_code = script_code


class ScriptOutputInvalid(HostError):
    code = "HVB-SCRIPT-OUTPUT"


class SourceError(HostError):
    """Reading a file the capture exposes (locally or over SMB) failed."""

    code = "HVB-SOURCE"


class SourceDenied(SourceError):
    """One file or folder the reading account may not read: its own NTFS ACL refuses it
    (inheritance disabled, or an explicit deny), although the share grants the account Read.
    ``path`` is the host's name for it. A files run names it (AVERTISSEMENT) and reads on."""

    code = "HVB-SOURCE-DENIED"

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message, permanent=True)
        self.path = path


class StoreError(HvbError):
    code = "HVB-STORE"
    exit_code = 4


class RepositoryCorrupt(StoreError):
    code = "HVB-STORE-CORRUPT"


class RestoreIncomplete(StoreError):
    """Files of a snapshot were not restored because their recorded name would lead outside
    the restore folder; the message names them. The other files were restored."""

    code = "HVB-RESTORE-REFUSED"


class KeyMismatch(StoreError):
    code = "HVB-KEY"


class ForgedRepository(StoreError):
    """The repository's writer is not the orchestrator the client's key file records."""

    code = "HVB-STORE-FORGED"


class BaieError(HvbError):
    code = "HVB-BAIE"
    exit_code = 5


class BaieUnreachable(BaieError):
    code = "HVB-BAIE-UNREACHABLE"
    permanent = False


class BaieAuthError(BaieError):
    code = "HVB-BAIE-AUTH"


class BaieFull(BaieError):
    code = "HVB-BAIE-FULL"


class HistoryError(HvbError):
    code = "HVB-HISTORY"
    exit_code = 6


class SchemaOutOfDate(HistoryError):
    code = "HVB-HISTORY-SCHEMA"


class MailError(HvbError):
    code = "HVB-MAIL"
    exit_code = 7
    permanent = False


class ServerError(HvbError):
    """The central server answered a site agent with something it cannot use."""

    code = "HVB-SERVER"
    exit_code = 8


class ServerUnreachable(ServerError):
    """No answer from the central server (network, TLS, server down); nothing is lost: what
    the agent holds waits in its spool."""

    code = "HVB-SERVER-UNREACHABLE"
    permanent = False


class ServerRefused(ServerError):
    """The central server refused the agent's token or request."""

    code = "HVB-SERVER-REFUSED"


def all_error_classes() -> list[type[HvbError]]:
    """Every class of the tree, the base included (used by docs and runbook checks)."""
    found: list[type[HvbError]] = []
    pending: list[type[HvbError]] = [HvbError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.code)
