"""Generate Python stubs (gen/) and Envoy's descriptor set (gateway/build/) from protos/.

The one code-generation command: `make proto` runs it, and `make test` checks that gen/ is fresh.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
GEN = ROOT / "gen"
DESCRIPTOR = ROOT / "gateway" / "build" / "descriptor.pb"
WKT_INCLUDE = Path(grpc_tools.__file__).parent / "_proto"
GOOGLEAPIS_INCLUDE = ROOT / "third_party" / "googleapis"


def run_protoc(*args: str) -> None:
    cmd = ["protoc", f"-I{PROTO_ROOT}", f"-I{GOOGLEAPIS_INCLUDE}", f"-I{WKT_INCLUDE}", *args]
    if protoc.main(cmd) != 0:
        sys.exit(f"protoc failed: {' '.join(cmd)}")


def main() -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    if GEN.exists():
        shutil.rmtree(GEN)
    GEN.mkdir()
    run_protoc(f"--python_out={GEN}", f"--pyi_out={GEN}", f"--grpc_python_out={GEN}", *protos)
    DESCRIPTOR.parent.mkdir(parents=True, exist_ok=True)
    # google/rpc/* lets Envoy render error details as JSON; they come from googleapis-common-protos.
    rpc_include = Path(
        os.path.dirname(__import__("google.rpc.status_pb2").rpc.status_pb2.__file__)
    ).parent.parent
    run_protoc(
        f"-I{rpc_include}",
        "--include_imports",
        f"--descriptor_set_out={DESCRIPTOR}",
        *protos,
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
    )
    print(f"generated {len(protos)} protos into {GEN.relative_to(ROOT)} and {DESCRIPTOR.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
