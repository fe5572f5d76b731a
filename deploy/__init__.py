"""Kubernetes deployment of ZQuant Scheduler: generators and helpers (see deploy/README.md)."""
