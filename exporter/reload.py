"""Reloading the config file and the web config while serving: on SIGHUP, and on
``POST /-/reload`` when ``--web.enable-lifecycle`` is given, as Prometheus does.

A reload is all or nothing. Both files are read and validated first; any problem refuses the
whole reload, the config in force keeps running, and ``saas_backup_config_last_reload_successful``
turns 0 until a reload works. Otherwise the sources are matched by name:

- a source whose section, and the cache settings its runner takes (TTLs, maximum age), are the
  same (compared as parsed, secrets included, and never logged) keeps its runner: its cache, its
  crawl position, its counters;
- a changed source gets a new runner that starts as at a restart: from the state file when there
  is one (what the old runner had, written just before), else empty;
- a removed source is stopped, its series are gone from the next scrape and it is pruned from the
  state file; an added one starts crawling (at once when ``cache.warm_up``).

Every swap happens between two awaits, so a scrape sees the old sources or the new, never a mix.
``cache.state_file`` and the ``web`` section (server limits) take effect at a restart only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from prometheus_client.metrics_core import GaugeMetricFamily

from exporter import logs
from exporter.config import CacheConfig, Config, ConfigError, load_config
from exporter.exposition import Exposition
from exporter.persist import Persistence, fingerprint
from exporter.refresh import Scheduler, SourceRunner
from exporter.render import encode
from exporter.settings import SourceBase
from exporter.state import Saved, StateFile
from exporter.webconfig import LiveWebConfig, WebConfig

logger = logging.getLogger(__name__)

# Exporter-level, like Prometheus's prometheus_config_last_reload_*; served with every answer,
# /metrics and /probe alike. Not in the catalogue: they carry no source and are no source's.
RELOAD_SUCCESSFUL: Final = (
    "saas_backup_config_last_reload_successful",
    "1 if the last load of the config file and the web config (at start, on SIGHUP or "
    "POST /-/reload) worked; 0 after a refused reload, while the previous config runs on.",
)
RELOAD_SUCCESS_TIMESTAMP: Final = (
    "saas_backup_config_last_reload_success_timestamp_seconds",
    "Unix time of the last successful load of the config: the start, or a reload.",
)

BuildRunner = Callable[[SourceBase, CacheConfig], SourceRunner]


@dataclass
class ReloadStatus:
    successful: bool
    success_timestamp: float
    _encoded: dict[bool, bytes] = field(default_factory=dict, repr=False)

    def lines(self, *, openmetrics: bool) -> bytes:
        """The two families, encoded once per change."""
        encoded = self._encoded.get(openmetrics)
        if encoded is None:
            families = [
                GaugeMetricFamily(*RELOAD_SUCCESSFUL, value=1 if self.successful else 0),
                GaugeMetricFamily(*RELOAD_SUCCESS_TIMESTAMP, value=self.success_timestamp),
            ]
            encoded = self._encoded[openmetrics] = encode(families, openmetrics=openmetrics)
        return encoded


class Persisted:
    """The scheduler's persister, whose state-file writer a reload replaces."""

    def __init__(self, current: Persistence | None = None) -> None:
        self.current = current
        self._started = False

    def start(self) -> None:
        if not self._started and self.current is not None:
            self.current.start()
        self._started = True

    async def stop(self) -> None:
        if self.current is not None:
            await self.current.stop()
            self.current = None

    def use(self, persistence: Persistence) -> None:
        """A new writer in place of a stopped one; started if the server has started."""
        self.current = persistence
        if self._started:
            persistence.start()


class Live:
    """What the HTTP app reads on every request and a reload swaps: the config in force, its
    sources' runners and the bodies assembled from them."""

    def __init__(
        self,
        config: Config,
        scheduler: Scheduler,
        persisted: Persisted | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.scheduler = scheduler
        self.persisted = persisted or Persisted()
        self.exposition = Exposition(config.metrics)
        self.status = ReloadStatus(True, clock())
        # Once ready, a reload that adds sources does not make the exporter unready again.
        self.ready_latched = False
        self._probes: dict[str, tuple[SourceRunner, Exposition]] = {}

    def runner(self, name: str) -> SourceRunner | None:
        return next((r for r in self.scheduler.runners if r.source.name == name), None)

    def probe_exposition(self, runner: SourceRunner) -> Exposition:
        """The bodies of one source's /probe: its own cache, so that scraping each source apart
        neither evicts /metrics' body nor re-encodes the other sources' customers."""
        entry = self._probes.get(runner.source.name)
        if entry is None or entry[0] is not runner:
            entry = (runner, Exposition(self.config.metrics))
            self._probes[runner.source.name] = entry
        return entry[1]

    def swap(self, config: Config, runners: Sequence[SourceRunner]) -> None:
        """Put a reloaded config and its runners in force. Synchronous: no scrape runs
        meanwhile."""
        if not self.scheduler.waiting():
            self.ready_latched = True
        self.config = config
        self.scheduler.runners = tuple(runners)
        self.exposition.reset(config.metrics)
        probes = {}
        for name, (runner, exposition) in self._probes.items():
            if runner in self.scheduler.runners:
                exposition.reset(config.metrics)
                probes[name] = (runner, exposition)
        self._probes = probes


def same_source(
    old: SourceBase, new: SourceBase, old_cache: CacheConfig, cache: CacheConfig
) -> bool:
    """Whether a source's runner can go on as it is: the same section (pydantic compares every
    field, secrets by value) and the same cache settings a runner takes."""

    def taken(c: CacheConfig) -> object:
        # An explicit ttl_seconds overrides the vendors' defaults even at the default value.
        return (c.ttl_seconds, "ttl_seconds" in c.model_fields_set, c.endpoints, c.max_age_seconds)

    return type(old) is type(new) and old == new and taken(old_cache) == taken(cache)


@dataclass(frozen=True)
class _Plan:
    kept: dict[str, SourceRunner]
    built: dict[str, SourceRunner]
    gone: list[SourceRunner]
    added: list[str]
    changed: list[str]


class Reloader:
    """Re-reads ``path`` (and the web config) and applies it to ``live``; one reload at a time."""

    def __init__(
        self,
        live: Live,
        path: Path,
        build_runner: BuildRunner,
        *,
        web: LiveWebConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._live = live
        self._path = path
        self._build = build_runner
        self._web = web
        self._clock = clock
        # What was in force at the start: changing them needs a restart.
        self._state_file = live.config.cache.state_file
        self._server = live.config.web
        self._lock = asyncio.Lock()
        self._closed = False
        self._tasks: set[asyncio.Task[list[str]]] = set()

    async def reload(self) -> list[str]:
        """Reload; the problems that refused it, none when it worked."""
        async with self._lock:
            if self._closed:
                return ["the exporter is shutting down"]
            config, web, problems = await self._load()
            if config is None or problems:
                return self._refused(problems)
            logs.redact.register(config.secrets())
            plan = self._plan(config)
            try:
                for name in [*plan.added, *plan.changed]:
                    settings = next(s for s in config.sources if s.name == name)
                    plan.built[name] = self._build(settings, config.cache)
            except Exception as exc:
                # A vendor's client could not be built: nothing is in force yet.
                await asyncio.gather(*(runner.stop() for runner in plan.built.values()))
                return self._refused([f"a source could not be set up ({type(exc).__name__})"])
            try:
                await self._apply(config, web, plan)
            except Exception as exc:
                # Not expected; the exception's text is not logged, as it could hold a value.
                return self._refused([f"the reload failed halfway ({type(exc).__name__})"])
            return []

    def reload_soon(self) -> None:
        """A reload for SIGHUP, in the background."""
        logger.info("msg=%s trigger=%s", "config reload requested", "SIGHUP")
        task = asyncio.get_running_loop().create_task(self.reload(), name="config-reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """At shutdown: wait for a reload under way, refuse any later one."""
        async with self._lock:
            self._closed = True

    async def _load(self) -> tuple[Config | None, WebConfig | None, list[str]]:
        """Both files, each checked whole, so that one reload lists every problem."""
        problems: list[str] = []
        web = None
        if self._web is not None:
            try:
                web = await asyncio.to_thread(self._web.load)
            except ConfigError as exc:
                problems += [f"web config: {problem}" for problem in exc.problems]
        try:
            config = await asyncio.to_thread(load_config, self._path)
        except ConfigError as exc:
            return None, None, problems + exc.problems
        except Exception as exc:
            return None, None, [*problems, f"{self._path}: cannot be loaded ({type(exc).__name__})"]
        return config, web, problems

    def _refused(self, problems: list[str]) -> list[str]:
        live = self._live
        live.status = ReloadStatus(False, live.status.success_timestamp)
        # Problems name keys and files, never values (exporter.config_errors).
        logger.error(
            "msg=%s file=%s problems=%s",
            "config not reloaded; the one in force stays",
            str(self._path),
            "; ".join(problems),
        )
        return problems

    def _plan(self, config: Config) -> _Plan:
        old = self._live.config
        before = {s.name: s for s in old.sources}
        runners = {r.source.name: r for r in self._live.scheduler.runners}
        kept: dict[str, SourceRunner] = {}
        added: list[str] = []
        changed: list[str] = []
        for settings in config.sources:
            previous, runner = before.get(settings.name), runners.get(settings.name)
            if previous is None or runner is None:
                added.append(settings.name)
            elif same_source(previous, settings, old.cache, config.cache):
                kept[settings.name] = runner
            else:
                changed.append(settings.name)
        gone = [runner for name, runner in runners.items() if name not in kept]
        return _Plan(kept, {}, gone, added, changed)

    async def _apply(self, config: Config, web: WebConfig | None, plan: _Plan) -> None:
        live = self._live
        state, saved = await self._saved(config, plan)
        for name, runner in plan.built.items():
            found = saved.get(name)
            if found is not None:
                runner.restore(found)
            runner.changed.clear()
            runner.removed.clear()
        runners = [plan.kept.get(s.name) or plan.built[s.name] for s in config.sources]
        # In force from here; nothing above awaited since the state file was read.
        live.swap(config, runners)
        if web is not None and self._web is not None:
            self._web.use(web)
        live.status = ReloadStatus(True, self._clock())
        await asyncio.gather(*(runner.stop() for runner in plan.gone))
        if state is not None:
            names = [s.name for s in config.sources]
            await asyncio.to_thread(state.prune, names)
            pairs = list(zip(runners, config.sources, strict=True))
            live.persisted.use(Persistence(state, pairs))
        if config.cache.warm_up:
            for runner in plan.built.values():
                runner.refresh()
        self._log(config, plan)

    async def _saved(
        self, config: Config, plan: _Plan
    ) -> tuple[StateFile | None, dict[str, Saved]]:
        """The state file, written and reopened, and what it holds of the new runners. Left
        alone when the sources stay the same (a reload that changes nothing, or the scrape or
        metrics settings only)."""
        persisted = self._live.persisted
        if self._state_file is None or persisted.current is None:
            return None, {}
        if not plan.built and not plan.gone:
            return None, {}
        # Written and closed: a changed source's new runner restores what its old one had.
        await persisted.stop()
        state = await asyncio.to_thread(StateFile, self._state_file)
        saved = {}
        for settings in config.sources:
            if settings.name in plan.built:
                found = await asyncio.to_thread(state.load, settings.name, fingerprint(settings))
                if found is not None:
                    saved[settings.name] = found
        return state, saved

    def _log(self, config: Config, plan: _Plan) -> None:
        later = []
        if config.cache.state_file != self._state_file:
            later.append("cache.state_file")
        if config.web != self._server:
            later.append("web")
        if later:
            logger.warning(
                "msg=%s settings=%s",
                "changed settings take effect at the next restart",
                ",".join(later),
            )
        kept = set(plan.kept)
        logger.info(
            "msg=%s file=%s sources=%d unchanged=%s changed=%s added=%s removed=%s",
            "config reloaded",
            str(self._path),
            len(config.sources),
            ",".join(sorted(kept)),
            ",".join(plan.changed),
            ",".join(plan.added),
            ",".join(r.source.name for r in plan.gone if r.source.name not in plan.changed),
        )


def install_sighup(reloader: Reloader) -> None:
    """SIGHUP reloads, in the running loop (the main thread's)."""
    loop = asyncio.get_running_loop()
    # No SIGHUP on Windows.
    with contextlib.suppress(AttributeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, reloader.reload_soon)
