"""`make bench`: runs every benchmark and prints its figures."""

from __future__ import annotations

from bench import rest_vs_grpc, scheduling


def main() -> None:
    rest_vs_grpc.main()
    scheduling.main()


if __name__ == "__main__":
    main()
