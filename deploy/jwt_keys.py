"""Make the files of the ``zquant-jwt`` Secret: the registry's signing key and Envoy's public JWKS.

Every registry replica must sign with the same key, and the gateway must know its public half, so
in Kubernetes the key is made once, outside the cluster, and shipped as a Secret (a registry started
without it would make its own key that no other pod knows). This uses the registry's own code
(``services.common.auth.load_or_create_keys``), so the JWKS ``kid`` is exactly the one the registry
puts in its tokens::

    .venv/bin/python -m deploy.jwt_keys --out /secure/dir
    kubectl -n zquant-scheduler create secret generic zquant-jwt \\
        --from-file=jwt_signing_key.pem=/secure/dir/jwt_signing_key.pem \\
        --from-file=jwks.json=/secure/dir/jwks.json

An existing ``jwt_signing_key.pem`` in --out is kept and only ``jwks.json`` is rewritten from it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from services.common.auth import KeyPair, load_or_create_keys

KEY_FILE = "jwt_signing_key.pem"
JWKS_FILE = "jwks.json"


def make_keys(directory: Path) -> KeyPair:
    """Creates (or keeps) directory/jwt_signing_key.pem and writes directory/jwks.json to match it."""
    directory.mkdir(parents=True, exist_ok=True)
    return load_or_create_keys(directory / KEY_FILE, directory / JWKS_FILE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.jwt_keys", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the two files")
    args = parser.parse_args(argv)
    pair = make_keys(args.out)
    sys.stdout.write(f"{args.out / KEY_FILE} and {args.out / JWKS_FILE} (kid {pair.kid})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
