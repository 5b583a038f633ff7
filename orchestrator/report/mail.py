"""The one door to SMTP: messages built with a text part, an HTML part and a JSON part (for RMM
and PSA tools), machine-readable headers, a copy in the outbox folder always, sending with
STARTTLS / TLS / none and bounded retries, every attempt recorded in the history."""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import time
from collections.abc import Callable
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config.load import LoadedConfig
from orchestrator.errors import MailError
from orchestrator.history.models import EmailRow
from orchestrator.history.queries import client_row
from orchestrator.private import private_dir
from orchestrator.report.render import Rendered
from orchestrator.secrets import read_secret

log = logging.getLogger(__name__)


def build(loaded: LoadedConfig, rendered: Rendered, recipients: list[str], *, status: str,
          client: str, when: date, data: dict[str, Any], kind: str,
          now: datetime) -> EmailMessage:
    """A message of ``kind`` (digest, alerts, summary, quota) made at ``now``: its Date is
    that time in the MSP's time zone; ``client`` is ``*`` for the hotline's messages about
    every client (its JSON part is then named after the kind)."""
    msg = EmailMessage()
    sender = loaded.config.smtp.from_ if loaded.config.smtp else (
        f"hvbackup <{loaded.config.msp.hotline[0]}>")
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(now.astimezone(loaded.config.msp.timezone))
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip(">"))
    msg["X-HVBackup-Status"] = status
    msg["X-HVBackup-Client"] = client
    msg["X-HVBackup-Date"] = when.isoformat()
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    msg.add_attachment(json.dumps(data, default=str, indent=1, ensure_ascii=False).encode(),
                       maintype="application", subtype="json",
                       filename=f"hvbackup-{kind if client == '*' else client}-"
                                f"{when.isoformat()}.json")
    return msg


def outbox_copy(loaded: LoadedConfig, msg: EmailMessage, name: str) -> Path:
    folder = private_dir(loaded.state_dir / "outbox")  # client mails: this account's only
    path = folder / f"{name}.eml"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(bytes(msg))
    return path


RETRY_DELAY_S = 10.0


def send(loaded: LoadedConfig, msg: EmailMessage, *, attempts: int = 3,
         sleep: Callable[[float], None] = time.sleep) -> None:
    """Send through the configured SMTP server; raises MailError after ``attempts``."""
    smtp = loaded.config.smtp
    if smtp is None:
        raise MailError("no 'smtp:' in the configuration: the message is only in the outbox")
    password = read_secret("the SMTP password", smtp.password_env, smtp.password_file,
                           loaded.base_dir)
    cafile = str(loaded.resolve(smtp.ca_file)) if smtp.ca_file else None
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            context = ssl.create_default_context(cafile=cafile)  # the relay's name is checked
            if smtp.security == "tls":
                server: smtplib.SMTP = smtplib.SMTP_SSL(
                    smtp.host, smtp.port, timeout=smtp.timeout_s, context=context)
            else:
                server = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
            with server:
                if smtp.security == "starttls":
                    server.starttls(context=context)
                if smtp.username:
                    server.login(smtp.username, password or "")
                server.send_message(msg)
            return
        except smtplib.SMTPAuthenticationError:
            raise MailError(f"SMTP {smtp.host}:{smtp.port} refused the credentials of "
                            f"{smtp.username}", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            log.warning("sending to %s failed (%s), attempt %d/%d", msg["To"], last, attempt,
                        attempts)
            if attempt < attempts:
                sleep(RETRY_DELAY_S * attempt)
    raise MailError(f"SMTP {smtp.host}:{smtp.port}: the message could not be sent after "
                    f"{attempts} attempts ({last}); it is in the outbox")


def deliver(loaded: LoadedConfig, sessions: sessionmaker[Session], msg: EmailMessage, *,
            kind: str, client: str | None, report_date: date | None, name: str, now: datetime,
            send_it: bool, sleep: Callable[[float], None] = time.sleep) -> EmailRow:
    """Outbox copy, then (when asked and configured) SMTP; recorded in the history."""
    path = outbox_copy(loaded, msg, name)
    status, error, attempts = "outbox", None, 0
    if send_it and loaded.config.smtp is not None:
        attempts = 3
        try:
            send(loaded, msg, attempts=attempts, sleep=sleep)
            status = "sent"
        except MailError as exc:
            status, error = "failed", exc.message
    with sessions() as session, session.begin():
        client_id = None
        if client:
            row = client_row(session, client)
            client_id = row.id if row else None
        email = EmailRow(kind=kind, client_id=client_id, report_date=report_date,
                         recipients=[a.strip() for a in str(msg["To"]).split(",")],
                         subject=str(msg["Subject"]), status=status, attempts=attempts,
                         created_at=now, sent_at=now if status == "sent" else None,
                         message_id=str(msg["Message-ID"]), outbox_path=str(path), error=error)
        session.add(email)
    if error:
        raise MailError(error)
    return email
