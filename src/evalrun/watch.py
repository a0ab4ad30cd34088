"""How a run is watched: subscribers, progress callbacks and the event log, gathered one way for
eval runs (``Runner``) and test runs (``TestRunner``) alike."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .eventlog import JsonLinesLog
from .events import Fanout, Observer
from .logs import LogObserver
from .progress import Throttle
from .reports.files import UNWRITABLE
from .schema import ProgressDict

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Watched"]


class Watched:
    """What a runner offers those who watch it; ``_observing`` gathers them for one run."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []
        self._progress_callbacks: list[tuple[Callable[[ProgressDict], Any], float]] = []

    def subscribe(self, observer: Observer) -> Self:
        """Receive every event of the run (displays, custom logs, metrics exporters)."""
        self._observers.append(observer)
        return self

    def on_progress(self, callback: Callable[[ProgressDict], Any], interval: float = 0.2) -> Self:
        """Receive the progress dict at most every ``interval`` seconds, and at the start and end."""
        self._progress_callbacks.append((callback, interval))
        return self

    @contextlib.contextmanager
    def _observing(
        self,
        own: Sequence[Observer],
        snapshot: Callable[[], ProgressDict],
        events_path: str | None,
        scrub: Callable[[str], str] | None = None,
    ) -> Iterator[Observer]:
        """One observer of a run: the runner's ``own`` first (they must be up to date before anyone
        reads them), then the ``--events`` log, the subscribers, the paced progress callbacks; any of
        these that raises is dropped with a warning (``Fanout``). With ``scrub``, every event's free
        text is scrubbed before anyone sees it."""
        with contextlib.ExitStack() as stack:
            extras: list[Observer] = []
            if events_path:
                log = stack.enter_context(open(events_path, "w", encoding="utf-8", errors=UNWRITABLE))
                extras.append(JsonLinesLog(log))
            extras.append(LogObserver())
            extras += self._observers
            extras += [Throttle(snapshot, callback, every) for callback, every in self._progress_callbacks]
            yield Fanout(own, extras, scrub)
