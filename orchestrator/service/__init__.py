"""Running hvbackup as a service: the systemd units (Linux) and the Windows service wrapper
configuration, shipped in the package and written out by ``hvbackup service``."""
