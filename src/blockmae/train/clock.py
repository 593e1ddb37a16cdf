"""Where a training process's time goes (`StageClock`): the pipeline reports it in summary.json (`pipeline_time`)."""

from __future__ import annotations

import time
from contextlib import contextmanager


class StageClock:
    """Where one rank's time goes, in seconds: loading its batch (`data`), waiting for the previous stage's
    output (`wait_input`: the pipeline's bubbles), its forward, loss, backward and step (`compute`; `loss.item()`
    synchronises a GPU), waiting for its sends to drain (`wait_send`: the next stage is slower) and checkpoints.
    Parts nest: time inside an inner part counts for it alone.

    The first logged window (fill and warm-up) is left out, as the bench leaves out its log row.
    """

    PARTS = ("data", "wait_input", "compute", "wait_send", "checkpoint")

    def __init__(self, step: int):
        self.open: list[str] = []
        self.reset(step)

    def reset(self, step: int) -> None:
        self.seconds, self.since, self.began = dict.fromkeys(self.PARTS, 0.0), step, time.perf_counter()
        self.mark = self.began

    def _charge(self) -> None:
        now = time.perf_counter()
        if self.open:
            self.seconds[self.open[-1]] += now - self.mark
        self.mark = now

    @contextmanager
    def __call__(self, part: str):
        self._charge()
        self.open.append(part)
        try:
            yield
        finally:
            self._charge()
            self.open.pop()

    def report(self, step: int) -> dict:
        total = time.perf_counter() - self.began
        return {"from_step": self.since, "steps": step - self.since, "total_s": total,
                **{f"{k}_s": v for k, v in self.seconds.items()}, "other_s": total - sum(self.seconds.values())}
