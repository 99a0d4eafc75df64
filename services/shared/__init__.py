"""Code every LifyTP service shares that has nothing to do with HTTP."""
