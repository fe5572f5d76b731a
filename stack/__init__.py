"""The development launcher: the whole ZQuant stack as local processes, for `make up`, tests and
benchmarks. It is not a service and is not shipped in the images (Kubernetes runs the services).

- :mod:`stack.config`: a frozen :class:`StackConfig`: which processes, their ports, environment,
  log files; every address and path is a pure function of it.
- :mod:`stack.ports`: fixed (ZQ_*_PORT) or free loopback ports.
- :mod:`stack.processes`: one child process: start it from the spawner thread, signal its group,
  stop a set of them, read its log.
- :mod:`stack.readiness`: is a gRPC service, the UI server or Envoy ready?
- :mod:`stack.restart`: the backoff policy for restarting a dead process.
- :mod:`stack.supervisor`: :class:`Stack`: start in order, wait until ready, restart the dead,
  stop in order.
- :mod:`stack.envoy`, :mod:`stack.leader`: Envoy's binary and config; the scheduler leader.
- :mod:`stack.cli`: ``python -m stack up`` and ``python -m stack up-cluster``.
"""

from stack.config import ROOT, StackConfig
from stack.restart import RestartPolicy
from stack.supervisor import Stack, StackError

__all__ = ["ROOT", "RestartPolicy", "Stack", "StackConfig", "StackError"]
