"""What this process has delivered for each run, shared by re-executions of one call.

LangGraph re-runs a tool from its first line after an interrupt (and a hand-built
``ToolNode`` re-runs the siblings of an interrupted call), so a run's delivery cursor, its
pauses and the answers applied so far must outlive one execution: they live here, per run,
in a bounded process-wide registry.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from langchain_coasty._lru import BoundedDict
from langchain_coasty.human import PauseRequest

__all__ = ["DELIVERED_RUNS", "DeliveredRuns", "RunProgress", "next_generation"]


@dataclass
class RunProgress:
    """What this process has already delivered for one run."""

    seq: int = 0
    pauses: list[PauseRequest] = field(default_factory=list)
    applied: int = 0
    done: bool = False
    owner: int = 0
    """Generation of the session delivering the events (the latest execution of the call)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_over(self, generation: int) -> int:
        """Hand delivery to the session ``generation`` if it is the newest; return the cursor.

        An async ``ToolNode`` leaves the sibling of an interrupted call running in the
        background, so its re-execution can overlap it: the newer session takes over.
        """
        with self.lock:
            self.owner = max(self.owner, generation)
            return self.seq

    def claim(self, generation: int, seq: int) -> bool:
        """Whether session ``generation`` delivers event ``seq`` (False: another one does)."""
        with self.lock:
            if generation != self.owner or seq <= self.seq:
                return False
            self.seq = seq
            return True


class DeliveredRuns:
    """The bounded registry of runs followed here, and of the idempotency keys used here."""

    def __init__(self, maxsize: int = 4096) -> None:
        self._runs: BoundedDict[str, RunProgress] = BoundedDict(maxsize)
        self._keys: BoundedDict[str, object] = BoundedDict(maxsize)

    def note_key(self, key: str) -> bool:
        """Remember that a call with this idempotency key started here; True if one did before."""
        mark = object()
        return self._keys.get_or_make(key, lambda: mark) is not mark

    def get(self, run_id: str) -> RunProgress | None:
        return self._runs.get(run_id)

    def get_or_create(self, run_id: str) -> RunProgress:
        return self._runs.get_or_make(run_id, RunProgress)

    def clear(self) -> None:
        self._runs.clear()
        self._keys.clear()


DELIVERED_RUNS = DeliveredRuns()
"""Every run this process follows (tests clear it between cases)."""
_generations = itertools.count(1)


def next_generation() -> int:
    """A number for a new session, larger than every earlier one."""
    return next(_generations)
