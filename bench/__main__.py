"""`make bench`: runs every benchmark and prints its figures."""

from __future__ import annotations

from bench import bulk_import, creates, log_lag, login_flood, purge, rest_vs_grpc, scheduling, seed, workflows


def main() -> None:
    rest_vs_grpc.main()
    scheduling.main()
    workflows.main()
    seed.main([])
    bulk_import.main([])
    creates.main([])
    login_flood.main()
    log_lag.main([])
    purge.main(["--rows", "20000"])  # the 1,000,000-row run is `make bench-purge`


if __name__ == "__main__":
    main()
