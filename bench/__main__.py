"""`make bench`: runs every benchmark and prints its figures."""

from __future__ import annotations

from bench import rest_vs_grpc, scheduling, workflows


def main() -> None:
    rest_vs_grpc.main()
    scheduling.main()
    workflows.main()


if __name__ == "__main__":
    main()
