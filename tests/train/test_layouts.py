"""Both process layouts give the one training loop every hook of `run.Layout` (caught here, not in a run's
processes), and one process is rank 0 of 1: the whole batch, its own losses, its own checkpoints."""

import pytest

from blockmae.train.distributed import Replicas
from blockmae.train.pipeline import Pipeline
from blockmae.train.run import Layout

HOOKS = sorted({name for name in vars(Layout) if not name.startswith("_")} | set(Layout.__annotations__))


@pytest.mark.parametrize("layout", [Replicas, Pipeline])
def test_every_layout_has_every_hook(layout):
    assert "save" in HOOKS and "writer" in HOOKS
    assert [name for name in HOOKS if not hasattr(layout, name)] == []


def test_one_process_draws_and_logs_everything():
    one = Replicas()
    assert one.writer and one.replicas == 1 and one.description == ""
    assert one.rows(8) == slice(0, 8) and one.gather(0, [1.5, None]) == [1.5, None]
    assert one.stage_input(0, 0) == {} and one.finish({}) == {}
