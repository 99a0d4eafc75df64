"""The HTTP boundary every LifyTP service shares.

`http` (the JSON entrypoint), validation, pagination, health endpoints and the
mapping of failures to status codes live here once.
"""
