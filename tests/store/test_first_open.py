"""A new client's first night with two runs at once (two hosts, two schedulers): one
repository is made, with one writer key, and both runs write into it."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

from orchestrator.store.open import open_for_writing
from orchestrator.store.repository import Repository
from tests.world import Setup

RUNS = 6


def test_runs_opening_a_new_repository_together_share_one_repository_and_key(
        tmp_path: Path) -> None:
    s = Setup(tmp_path)
    settings = s.loaded.repository("acme", "site-a")
    assert not settings.writer_key.exists()
    start = threading.Barrier(RUNS)
    opened: list[Repository] = []
    failed: list[BaseException] = []

    def first_run() -> None:
        start.wait()
        try:
            opened.append(open_for_writing(settings))
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=first_run) for _ in range(RUNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert failed == []
        on_baie = Repository.read_config(opened[0].target)
        assert on_baie is not None
        assert {r.id for r in opened} == {on_baie["id"]}
        secret = base64.b64decode(settings.writer_key.read_text())
        assert {r.writer.check for r in opened} == {on_baie["writer_check"]}
        assert opened[0].writer.secret == secret
    finally:
        for repo in opened:
            repo.close()
            repo.target.close()
