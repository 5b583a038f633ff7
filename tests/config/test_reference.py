"""The YAML reference in docs/ is the one generated from the models, not a hand-made copy."""

from __future__ import annotations

from orchestrator.config import models
from orchestrator.config.reference import reference
from tests.conftest import REPO


def test_committed_reference_is_the_generated_one() -> None:
    committed = (REPO / "docs" / "configuration-reference.md").read_text(encoding="utf-8")
    assert committed == reference(), (
        "docs/configuration-reference.md is out of date: run "
        "'.venv/bin/python -m orchestrator.config.reference > docs/configuration-reference.md'")


def test_every_key_is_explained() -> None:
    text = reference()
    for model in (models.Config, models.Msp, models.Client, models.HypervVmJob,
                  models.SqlServerJob, models.FilesJob, models.Host, models.WinrmSettings,
                  models.SftpBaie, models.Retention):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no docstring"
            assert f"| `{field.alias or name}` |" in text
