"""When the state file is written: what changed since the last write, every few seconds and at
shutdown, off the event loop. Restoring happens once, before the first scrape."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from typing import Final

from exporter.config import Config
from exporter.refresh import SourceRunner
from exporter.settings import SourceBase
from exporter.state import SourceMeta, StateFile

logger = logging.getLogger(__name__)

FLUSH_SECONDS: Final = 5.0


def fingerprint(settings: SourceBase) -> str:
    """Which account a source's saved data belongs to: the same vendor at the same address.
    Saved data of another (the config now points elsewhere) is not restored."""
    identity = f"{settings.vendor}\n{settings.base_url}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def saved_customer_lists(config: Config) -> dict[str, dict[str, str]]:
    """Each source's customer list (id -> name, before its filter) when the state file was last
    written; nothing when there is no state file (none is created here)."""
    path = config.cache.state_file
    if path is None or not path.is_file():
        return {}
    state = StateFile(path)
    try:
        lists = {}
        for settings in config.sources:
            saved = state.load(settings.name, fingerprint(settings))
            if saved is not None:
                # Files written before the list was kept: the customers served then.
                lists[settings.name] = saved.meta.customer_list or dict.fromkeys(saved.parts, "")
        return lists
    finally:
        state.close()


class Persistence:
    def __init__(
        self, state: StateFile, runners: Sequence[tuple[SourceRunner, SourceBase]]
    ) -> None:
        self._state = state
        self._runners = [(runner, fingerprint(settings)) for runner, settings in runners]
        # Sources whose next write must hold every part: a write failed or the file is new.
        self._whole: set[str] = set()
        # What was last written of each source's metadata: an idle source is not written again.
        self._written: dict[str, SourceMeta] = {}
        self._task: asyncio.Task[None] | None = None

    def restore(self) -> None:
        self._state.prune([runner.source.name for runner, _ in self._runners])
        for runner, print_ in self._runners:
            saved = self._state.load(runner.source.name, print_)
            if saved is not None:
                runner.restore(saved)
            runner.changed.clear()
            runner.removed.clear()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="state-file")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        for runner, print_ in self._runners:
            name = runner.source.name
            whole = name in self._whole
            parts = runner.crawl.parts
            changed = set(parts) if whole else runner.changed & set(parts)
            upserts = {cid: parts[cid] for cid in changed}
            deletes = set(runner.removed)
            meta = runner.meta()
            if not (whole or upserts or deletes) and meta == self._written.get(name):
                continue
            runner.changed.clear()
            runner.removed.clear()
            written = await asyncio.to_thread(
                self._state.save, name, print_, meta, upserts, deletes, replace=whole
            )
            if written:
                self._whole.discard(name)
                self._written[name] = meta
            else:
                self._whole.add(name)
                self._written.pop(name, None)

    async def stop(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
        self._state.close()
