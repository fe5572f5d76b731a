"""Offer, alone: answered at most once, and only while its trigger waits; the answer's own answer is
what the trigger ended with, also when it failed before it waited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.common.errors import Conflict, NotFound, Reason
from services.registry.live.trigger_offers import Choice, Offer

pytestmark = pytest.mark.asyncio

CHOICE = Choice("10.0.0.7:50052", 15.0, datetime(2026, 1, 1, tzinfo=UTC))


async def test_an_offer_is_answered_once_and_the_waiting_trigger_takes_that_answer() -> None:
    offer = Offer(1, 3)
    outcome = offer.answer(CHOICE)
    with pytest.raises(NotFound) as again:
        offer.answer(None)
    assert again.value.reason == Reason.TRIGGER_OFFER_GONE
    assert await asyncio.to_thread(offer.wait) == CHOICE
    assert outcome is not None and not outcome.done()


async def test_an_answer_gets_the_error_of_a_trigger_that_failed_before_it_waited() -> None:
    offer = Offer(1, 3)
    outcome = offer.answer(CHOICE)
    offer.settle(Conflict("已有运行中的执行", reason=Reason.RUN_ALREADY_ACTIVE))
    assert outcome is not None
    with pytest.raises(Conflict):
        await outcome


async def test_an_answer_after_the_trigger_settled_finds_the_offer_gone() -> None:
    offer = Offer(1, 3)
    offer.settle(None)
    with pytest.raises(NotFound):
        offer.answer(CHOICE)
