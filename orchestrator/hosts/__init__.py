"""Hosts: one ``HostSession`` door (run a script, get a dict) and its three kinds, built by
``open.open_host``: WinRM for a real Windows host, the simulator, the orchestrator's own machine."""
