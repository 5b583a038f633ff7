"""Runbooks, one page per error code, shipped as package data (the dashboard serves them)."""
