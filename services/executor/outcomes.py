"""Outcomes that outlive the executor: finished runs no scheduler acknowledged yet, on disk.

An executor keeps each run's outcome until a scheduler tells it the registry has stored it
(services/scheduler/acknowledgements.py), so the next leader can collect an outcome whose report
was lost. Kept only in memory, that outcome died with the executor: a run that finished just before
its executor was killed (while no scheduler could store it: a step-down, a registry restart) was
recorded as lost and run again. Here each outcome is written to disk before anyone is told the run
finished, removed once acknowledged, and read back when the executor starts; the executor then
offers it to the scheduler that re-attaches to the run, exactly as if it had never stopped.

Durable means fsync, and an fsync costs milliseconds: one per outcome would cap an executor at a
hundred-odd finished runs a second. So outcomes are written in batches (group commit): while one
batch is being written, the outcomes that finish meanwhile wait and go together in the next. A batch
is one file, `batch-<seq>.jsonl`, one outcome per line, made whole or not at all (a temporary file,
fdatasync, rename, fsync of the directory). A file is removed once every outcome in it was
acknowledged, superseded (a later batch holds a newer record of the run: a retry, a re-attach by
another attempt) or forgotten; a later line of a run overrides an earlier one when reading back. An
acknowledged outcome whose file still holds others may come back after a crash: harmless, the
registry already has it and no scheduler re-attaches to a run that is no longer running.

Every file operation runs on one worker thread of the store, in the order it was asked for: the
event loop never waits on the disk, and a removal can never overtake the write it follows (an
acknowledgement comes only after the outcome was sent, which is after it was written; a removal of
an outcome still waiting for its batch takes it out of the batch).

The directory is the executor's own (mode 0700, files 0600): jobs running as another user cannot
read results.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_PREFIX = "batch-"
_SUFFIX = ".jsonl"
_TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True, slots=True)
class StoredOutcome:
    """What survives a restart: enough to answer a re-attach and an acknowledgement."""

    execution_id: int
    attempt: int
    task_id: int
    task_type: str
    status: str
    error_message: str
    result: dict[str, Any]
    # Wall clock (time.time()), so the keep horizon survives a restart.
    finished_at: float

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "execution_id": self.execution_id,
                "attempt": self.attempt,
                "task_id": self.task_id,
                "task_type": self.task_type,
                "status": self.status,
                "error_message": self.error_message,
                "result": self.result,
                "finished_at": self.finished_at,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> StoredOutcome:
        """Raises ValueError on anything but a line this module wrote."""
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        try:
            outcome = cls(
                execution_id=_exact(raw["execution_id"], int),
                attempt=_exact(raw["attempt"], int),
                task_id=_exact(raw["task_id"], int),
                task_type=_exact(raw["task_type"], str),
                status=_exact(raw["status"], str),
                error_message=_exact(raw["error_message"], str),
                result=_exact(raw["result"], dict),
                finished_at=float(_exact(raw["finished_at"], (int, float))),
            )
        except KeyError as exc:
            raise ValueError(f"missing {exc}") from None
        if outcome.execution_id <= 0:
            raise ValueError("execution_id must be positive")
        return outcome


def _exact(value: Any, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"unexpected {type(value).__name__}")
    return value


def _batch_files(directory: Path) -> list[tuple[int, Path]]:
    """(sequence number, path) of every batch file, oldest first."""
    found = []
    for path in directory.iterdir():
        name = path.name
        if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
            number = name[len(_PREFIX) : -len(_SUFFIX)]
            if number.isdigit():
                found.append((int(number), path))
    return sorted(found)


def read_stored(directory: Path) -> dict[int, tuple[StoredOutcome, Path]]:
    """The newest stored record of each run and the file holding it; reads only (tests, tools:
    safe while an executor writes). Unreadable lines are skipped."""
    newest: dict[int, tuple[StoredOutcome, Path]] = {}
    if not directory.is_dir():
        return newest
    for _, path in _batch_files(directory):
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            continue  # removed meanwhile
        for line in lines:
            try:
                outcome = StoredOutcome.from_json(line)
            except ValueError:
                log.warning("skipping an unreadable stored outcome", extra={"file": path.name})
                continue
            newest[outcome.execution_id] = (outcome, path)
    return newest


class OutcomeStore:
    """One executor's unacknowledged outcomes on disk. `save` and `remove` are the executor's;
    `load` once at start. The `*_now` methods are the blocking bodies, run on the store's thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outcome-store")
        # Outcomes waiting for the next batch, with who waits for each.
        self._waiting: list[tuple[StoredOutcome, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        # Only touched on the store's thread: which runs each file still holds, and where each
        # run's newest record is.
        self._held: dict[Path, set[int]] = {}
        self._where: dict[int, Path] = {}
        self._next_batch = 1

    async def save(self, outcome: StoredOutcome) -> bool:
        """Durably written with the next batch (False, logged, when the disk refused: the outcome
        stays in memory only)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._waiting.append((outcome, done))
        if self._writer is None:
            self._writer = loop.create_task(self._write_batches())
        return await done

    async def remove(self, execution_ids: Iterable[int]) -> None:
        gone = set(execution_ids)
        if not gone:
            return
        # Not yet in a batch: never written at all.
        for outcome, done in self._waiting:
            if outcome.execution_id in gone and not done.done():
                done.set_result(True)
        self._waiting = [(o, d) for o, d in self._waiting if o.execution_id not in gone]
        await self._off_loop(self.remove_now, gone)

    async def load(self, keep_seconds: float) -> list[StoredOutcome]:
        """Every outcome kept, oldest first; files left with nothing fresh, and interrupted
        writes, are removed."""
        return await self._off_loop(self.load_now, keep_seconds)

    def close(self) -> None:
        """Waits for the operations asked for so far."""
        self._thread.shutdown(wait=True)

    async def _write_batches(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                stored = await self._off_loop(self.write_batch_now, [outcome for outcome, _ in batch])
                for _, done in batch:
                    if not done.done():
                        done.set_result(stored)
        finally:
            self._writer = None

    async def _off_loop(self, function: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    # ---- blocking bodies (the store's thread) ----------------------------------------------------

    def write_batch_now(self, outcomes: list[StoredOutcome]) -> bool:
        if not outcomes:
            return True
        try:
            data = b"".join(outcome.to_json() + b"\n" for outcome in outcomes)
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            while (final := self._batch_path()).exists():  # files of a run that never loaded them
                self._next_batch += 1
            temporary = final.with_name(_TEMP_PREFIX + final.name)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fdatasync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temporary, final)
            self._sync_directory()
        except (OSError, TypeError, ValueError) as exc:
            log.error(
                "could not store runs' outcomes: they are kept in memory only",
                extra={"runs": len(outcomes), "error": str(exc)},
            )
            return False
        self._next_batch += 1
        self._held[final] = set()
        for outcome in outcomes:
            self._forget(outcome.execution_id)  # an older record of the run is superseded
            self._held[final].add(outcome.execution_id)
            self._where[outcome.execution_id] = final
        return True

    def remove_now(self, execution_ids: Iterable[int]) -> None:
        # No fsync: a removal lost in a crash only brings back an outcome the registry already has.
        for execution_id in execution_ids:
            self._forget(execution_id)

    def load_now(self, keep_seconds: float) -> list[StoredOutcome]:
        if not self.directory.is_dir():
            return []
        for path in self.directory.iterdir():
            if path.name.startswith(_TEMP_PREFIX):  # a write a crash cut short: never renamed
                path.unlink(missing_ok=True)
        files = _batch_files(self.directory)
        if files:
            self._next_batch = files[-1][0] + 1
        horizon = time.time() - keep_seconds
        kept: list[StoredOutcome] = []
        self._held = {path: set() for _, path in files}
        self._where = {}
        for outcome, path in read_stored(self.directory).values():
            if outcome.finished_at >= horizon:
                kept.append(outcome)
                self._held[path].add(outcome.execution_id)
                self._where[outcome.execution_id] = path
        for path, held in list(self._held.items()):
            if not held:
                self._unlink(path)
        kept.sort(key=lambda outcome: outcome.finished_at)
        return kept

    def _batch_path(self) -> Path:
        return self.directory / f"{_PREFIX}{self._next_batch:012d}{_SUFFIX}"

    def _forget(self, execution_id: int) -> None:
        path = self._where.pop(execution_id, None)
        if path is None:
            return
        held = self._held.get(path)
        if held is not None:
            held.discard(execution_id)
            if not held:
                self._unlink(path)

    def _unlink(self, path: Path) -> None:
        self._held.pop(path, None)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove stored outcomes", extra={"file": path.name, "error": str(exc)})

    def _sync_directory(self) -> None:
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
