"""The reliability harness: two replicas of every process behind nginx, a
steady mixed load, and replicas or backing stores failing during it.

Run `python -m tests.reliability.harness [--quick]`; docs/RELIABILITY.md
explains the scenarios and reports the figures of a full run.
"""
