"""The scheduler's executor pool: round robin, cool-downs, each executor's room, and addresses
resolved from DNS."""

from __future__ import annotations

import asyncio

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


async def test_a_run_is_claimed_for_an_executor_only_while_it_has_room_and_a_release_makes_room() -> None:
    pool = ExecutorPool(("127.0.0.1:1", "127.0.0.1:2"), "token")
    first, second = pool.pick(), pool.pick()
    assert first is not None and second is not None
    first.capacity, second.capacity = 2, 1  # as their GetLoad answers said
    # Room left: one more on the first; the second is full with the run picked above.
    assert [h.address for h in (pool.pick(), pool.pick(), pool.pick()) if h] == ["127.0.0.1:1"]
    ExecutorPool.release(second)
    assert [h.address for h in (pool.pick(), pool.pick()) if h] == ["127.0.0.1:2"]
    ExecutorPool.release(first)
    ExecutorPool.reserve(first)  # a run re-attached where it runs takes the room back
    assert pool.pick() is None
    pool.release_all()  # the dispatcher stopped: none of its runs holds room any more
    assert [h.address for h in (pool.pick(), pool.pick(), pool.pick(), pool.pick()) if h] == [
        "127.0.0.1:1",
        "127.0.0.1:2",
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


async def test_an_idle_pool_resolves_its_dns_names_and_counts_the_executors_it_may_use() -> None:
    pool = ExecutorPool(("dns:///localhost:50061",), "token", resolve_seconds=0.05)
    assert pool.available_count() == 0
    resolving = asyncio.create_task(pool.keep_resolved())
    try:
        for _ in range(200):  # no pick: the pool resolves by itself
            if pool.available_count():
                break
            await asyncio.sleep(0.05)
        count = pool.available_count()
        assert count >= 1
        handle = pool.pick()
        assert handle is not None
        ExecutorPool.cool_down(handle, 60)
        assert pool.available_count() == count - 1
    finally:
        resolving.cancel()
        await pool.close()
