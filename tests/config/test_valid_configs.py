"""The shipped configs load, defaults apply, and paths resolve from the config's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.config.models import FilesJob, HypervVmJob, SftpBaie, SqlServerJob
from orchestrator.errors import UsageError
from tests.config.base import BASE, mutate
from tests.conftest import REPO, write_config


def test_example_config_covers_every_job_type_and_three_clients() -> None:
    loaded = load_config(REPO / "config" / "example.yaml")
    cfg = loaded.config
    assert len(cfg.clients) == 3
    assert {type(j.job) for j in loaded.jobs()} == {HypervVmJob, SqlServerJob, FilesJob}
    assert set(cfg.baies) == {"paris-1", "paris-2"}
    paris1 = cfg.baies["paris-1"]
    assert isinstance(paris1, SftpBaie)
    assert paris1.bandwidth is not None and paris1.bandwidth.burst_mbps == 100
    erp = loaded.job("acme/erp").job
    assert isinstance(erp, HypervVmJob)
    assert erp.vms == ["ERP01", "DC01"]
    assert erp.schedule.describe() == "daily 22:00"
    assert loaded.copies_of(loaded.job("acme/erp").client, erp) == ["paris-1", "paris-2"]


def test_demo_config_uses_only_simulated_hosts_and_local_baies() -> None:
    loaded = load_config(REPO / "config" / "demo.yaml")
    assert all(b.type == "local" for b in loaded.config.baies.values())
    hosts = [h for c in loaded.config.clients.values() for h in c.hosts.values()]
    assert hosts and all(h.transport == "simulated" for h in hosts)
    assert loaded.state_dir == (REPO / "demo-state").resolve()
    assert loaded.database_url == f"sqlite:///{(REPO / 'demo-state').resolve()}/hvbackup.db"


def test_defaults_fill_what_the_technician_left_out(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, BASE))
    ref = loaded.job("acme/erp")
    job = ref.job
    assert isinstance(job, HypervVmJob)
    assert job.window_hours == 8
    assert job.retries == 2
    assert job.retention.keep_days == 30
    assert job.consistency == "application"
    assert job.image_chunk_kib == 512
    assert loaded.language_of(ref.client) == "fr"
    host = ref.client.hosts["hv01"]
    assert host.winrm is not None
    assert host.winrm.port == 5986 and host.winrm.cert_validation is True
    assert host.winrm.operation_timeout_s < host.winrm.read_timeout_s


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    loaded = load_config(write_config(sub, BASE))
    assert loaded.database_url == f"sqlite:///{sub.resolve()}/var/h.db"
    assert loaded.resolve("keys/acme.pub") == sub.resolve() / "keys" / "acme.pub"


def test_default_state_dir_when_not_configured(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, BASE.replace("database: sqlite:///var/h.db\n", "")))
    # Not root in a real install; under root the service's /var/lib/hvbackup.
    assert loaded.state_dir.name == "hvbackup"
    assert loaded.database_url.endswith("/hvbackup/hvbackup.db")


def test_postgres_url_is_kept_as_written(tmp_path: Path) -> None:
    text = BASE.replace("sqlite:///var/h.db", "postgresql+psycopg://hvb@db.msp.example/hvbackup")
    assert load_config(write_config(tmp_path, text)).database_url == (
        "postgresql+psycopg://hvb@db.msp.example/hvbackup"
    )


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = mutate(
        "    jobs:\n      erp:\n        type: hyperv-vm\n        host: hv01\n",
        "    jobs:\n      erp: &vmjob\n        type: hyperv-vm\n        host: hv01\n",
    )
    text += '      erp2:\n        <<: *vmjob\n        vms: [RDS01]\n'
    loaded = load_config(write_config(tmp_path, text))
    erp2 = loaded.job("acme/erp2").job
    assert isinstance(erp2, HypervVmJob)
    assert erp2.vms == ["RDS01"]
    assert erp2.schedule.describe() == "daily 22:00"


def test_warnings_name_missing_files_and_unset_variables(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, BASE))
    text = "\n".join(str(w) for w in loaded.warnings)
    assert ("clients.acme.encryption.public_key_file: public key 'keys/acme.pub' does not exist"
            in text)
    assert "environment variable ACME_WINRM_PASSWORD is not set" in text


def test_unknown_job_reference_suggests(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, BASE))
    with pytest.raises(UsageError, match=r"no job 'erb' in client 'acme'.*did you mean 'erp'\?"):
        loaded.job("acme/erb")
    with pytest.raises(UsageError, match=r"no client 'acmee'.*did you mean 'acme'\?"):
        loaded.job("acmee/erp")
    with pytest.raises(UsageError, match=r"no client 'zzz' in .*hvbackup.yaml \(known: acme\)$"):
        loaded.job("zzz/erp")
