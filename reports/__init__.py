"""E-mail templates shipped as package data (see README.md)."""
