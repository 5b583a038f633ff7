"""The technician's YAML: typed models, validation with located messages, loading."""

from __future__ import annotations

from orchestrator.config.load import CONFIG_ENV, JobRef, LoadedConfig, config_path_from, load_config
from orchestrator.config.models import Config

__all__ = ["CONFIG_ENV", "Config", "JobRef", "LoadedConfig", "config_path_from", "load_config"]
