"""Runs: one job end to end, and the copies between baies."""
