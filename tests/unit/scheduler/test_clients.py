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
    pool.release(second)
    assert [h.address for h in (pool.pick(), pool.pick()) if h] == ["127.0.0.1:2"]
    pool.release(first)
    ExecutorPool.reserve(first)  # a run re-attached where it runs takes the room back
    assert pool.pick() is None
    pool.release_all()  # the dispatcher stopped: none of its runs holds room any more
    assert [h.address for h in (pool.pick(), pool.pick(), pool.pick(), pool.pick()) if h] == [
        "127.0.0.1:1",
        "127.0.0.1:2",
        "127.0.0.1:1",
    ]
    await pool.close()


def full_pool(capacity: int = 1) -> ExecutorPool:
    """One executor, known to take `capacity` runs, all of them taken."""
    pool = ExecutorPool(("127.0.0.1:1",), "token")
    handle = pool.pick()
    assert handle is not None
    pool.learn_capacity(handle, capacity)
    for _ in range(capacity - 1):
        assert pool.pick() is handle
    return pool


async def test_runs_waiting_for_room_get_it_oldest_first_as_runs_end_and_a_new_fire_queues_behind_them() -> (
    None
):
    pool = full_pool()
    (handle,) = pool._handles
    waits = [asyncio.create_task(pool.wait_for_room(key)) for key in (7, 3, 9)]
    await asyncio.sleep(0)
    assert pool.pick() is None  # a new fire does not jump the line, though...
    order = []
    for _ in waits:
        pool.release(handle)  # ...a run ended: its room goes to the run waiting longest
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED, timeout=1)
        (first,) = [task for task in done if waits.index(task) not in order]
        assert first.result() is handle
        order.append(waits.index(first))
    assert order == [0, 1, 2]
    assert handle.reserved == 1 and pool.pick() is None
    await pool.close()


async def test_a_run_that_stops_waiting_leaves_the_line_and_its_turn_goes_to_the_next() -> None:
    pool = full_pool()
    (handle,) = pool._handles
    terminated = asyncio.create_task(pool.wait_for_room(1))
    patient = asyncio.create_task(pool.wait_for_room(2))
    await asyncio.sleep(0)
    pool.stop_waiting(1)
    assert await terminated is None
    pool.release(handle)
    assert await asyncio.wait_for(patient, 1) is handle
    assert handle.reserved == 1
    await pool.close()


async def test_room_handed_to_a_run_cancelled_at_that_moment_passes_to_the_next_run() -> None:
    pool = full_pool()
    (handle,) = pool._handles
    cancelled = asyncio.create_task(pool.wait_for_room(1))
    patient = asyncio.create_task(pool.wait_for_room(2))
    await asyncio.sleep(0)
    pool.release(handle)  # handed to the first...
    cancelled.cancel()  # ...whose run is cancelled before it could use it
    await asyncio.gather(cancelled, return_exceptions=True)
    assert await asyncio.wait_for(patient, 1) is handle
    assert handle.reserved == 1
    await pool.close()


async def test_room_on_an_executor_cooling_down_is_handed_over_when_its_cool_down_ends() -> None:
    pool = full_pool()
    (handle,) = pool._handles
    waiting = asyncio.create_task(pool.wait_for_room(1))
    await asyncio.sleep(0)
    ExecutorPool.cool_down(handle, 0.2)  # it declined a run: passed over a while
    pool.release(handle)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert await asyncio.wait_for(waiting, 1) is handle
    await pool.close()


async def test_a_capacity_learned_hands_the_new_room_to_the_runs_waiting() -> None:
    pool = full_pool()
    (handle,) = pool._handles
    waiting = asyncio.create_task(pool.wait_for_room(1))
    await asyncio.sleep(0)
    pool.learn_capacity(handle, 2)  # as its GetLoad answer said
    assert await asyncio.wait_for(waiting, 1) is handle
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
