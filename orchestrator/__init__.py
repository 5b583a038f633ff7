"""hvbackup: hot backups of Windows Hyper-V hosts for managed service providers."""

from __future__ import annotations

__version__ = "0.1.0"
