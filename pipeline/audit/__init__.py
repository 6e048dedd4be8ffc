"""Checking and querying a store after the fact: `verify` (recompute every chunk digest) and `lineage` (what
produced a region). Read-only; above the stages, whose group names and markers they read."""
