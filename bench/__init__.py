"""Benchmarks: the service against the baselines measured in the same run. ``python -m bench`` runs them all."""
