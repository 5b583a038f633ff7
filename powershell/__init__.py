"""PowerShell scripts run on Windows hosts, shipped as package data (see README.md)."""
