"""Baies: where repository files live (local folder, SFTP), and the wrappers around them."""
