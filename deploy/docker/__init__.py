"""Container image builds (see deploy/README.md)."""
