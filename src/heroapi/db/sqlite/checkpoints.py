"""WAL checkpoints, from a thread with a connection of its own (`Checkpointer`)."""

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Final

from heroapi.config import Settings

logger = logging.getLogger("heroapi")


class Checkpointer:
    """Copies the write-ahead log into the database file from a thread, a few times a second.

    SQLite's own checkpoints run inside a commit, and so on the event loop, where their fsync
    stalled every request for milliseconds (post/patch p99). Here a thread runs PASSIVE
    checkpoints, which never block readers or writers, and the serving connection keeps a
    backstop at `BACKSTOP_PAGES`. A checkpoint another process is running just makes this one
    skip. Its connection has no busy handler (`timeout=0`) and lives in the thread: a lock
    another process holds never makes the event loop wait for a checkpoint.

    Under a steady stream of writes a PASSIVE checkpoint copies (and syncs) the bulk of the
    log but cannot finish it: commits add frames while it copies, and only a checkpoint that
    reaches the end lets the log start over. The log then grows to the backstop, where the
    serving connection finishes the job in a commit (the PATCH benchmark: every ~0.3 s, ~6 ms
    of fsyncs on the event loop instead of ~25 ms). Finishing it from this thread instead,
    with the connection held, was slower (docs/performance.md).
    """

    INTERVAL: Final = 0.05
    BACKSTOP_PAGES: Final = 10_000  # ~40 MB of log

    def __init__(self, path: str, settings: Settings) -> None:
        self._path = path
        self._settings = settings
        self._raw: sqlite3.Connection | None = None
        # Held by the thread checkpointing: close() waits for a checkpoint that is under way.
        self._busy = threading.Lock()
        self.frames_copied = 0
        self.rounds = 0

    def _checkpoint(self) -> None:
        with self._busy:
            self.rounds += 1
            if self._raw is None:
                self._raw = sqlite3.connect(
                    self._path, timeout=0, isolation_level=None, check_same_thread=False
                )
                self._raw.execute(f"PRAGMA synchronous={self._settings.sqlite_synchronous}")
            _, _, copied = self._raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.frames_copied += max(copied, 0)

    def close(self) -> None:
        with self._busy:
            if self._raw is not None:
                self._raw.close()
                self._raw = None

    async def run(self, writes: Callable[[], int]) -> None:
        """Checkpoint every INTERVAL after `writes()` (rows this process changed) moved: an idle
        server wakes no thread. Other processes' writes are their own checkpointers' work."""
        checkpointed = writes()
        while True:
            await asyncio.sleep(self.INTERVAL)
            written = writes()
            if written == checkpointed:
                continue
            try:
                await asyncio.to_thread(self._checkpoint)
                checkpointed = written
            except sqlite3.Error as error:  # busy, disk full...: the next round tries again
                logger.warning("WAL checkpoint failed: %s", error)
