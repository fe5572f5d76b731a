"""The scheduler's executor pool: round robin, cool-downs, and addresses resolved from DNS."""

from __future__ import annotations

from services.scheduler.clients import ExecutorPool


async def test_round_robin_skips_executors_cooling_down() -> None:
    pool = ExecutorPool(("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"), "token")
    picked = [pool.pick() for _ in range(3)]
    assert [h.address for h in picked if h] == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
    assert picked[1] is not None
    ExecutorPool.cool_down(picked[1], 60)
    assert [h.address for h in (pool.pick(), pool.pick(), pool.pick()) if h] == [
        "127.0.0.1:1",
        "127.0.0.1:3",
        "127.0.0.1:1",
    ]
    await pool.close()


async def test_a_dns_name_becomes_one_handle_per_address_and_follows_changes() -> None:
    pool = ExecutorPool(("dns:///localhost:50061",), "token", resolve_seconds=0)
    assert pool.pick() is None  # nothing resolved yet; the first pick starts a resolution
    await pool.resolve()
    addresses = {h.address for h in (pool.pick(), pool.pick()) if h}
    assert "127.0.0.1:50061" in addresses
    # Re-resolving keeps the handle (and its channel) of an executor that is still there.
    kept = pool.pick()
    await pool.resolve()
    later = [pool.pick() for _ in range(len(addresses))]
    assert kept is not None and any(handle is kept for handle in later)
    await pool.close()
