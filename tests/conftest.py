import os

import pytest
import torch

# Under pytest-xdist each worker has a core of its own: two threads each would oversubscribe the machine.
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)


@pytest.fixture
def single_thread():
    """Torch and BLAS on one thread for this test (`helpers.one_thread`): for the slow tests on tiny models."""
    from helpers import one_thread

    with one_thread():
        yield


def pytest_collection_modifyitems(config, items):
    """CUDA-only tests are deselected (not skipped) on a machine without a GPU: they are counted nowhere rather
    than as passes, and benchmarks/gpu_check.sh runs them where there is one.

    Files holding slow tests run first: xdist hands out files in this order, so the long ones start early and the
    short ones fill in around them, instead of one worker finishing alone on the last long file."""
    if not torch.cuda.is_available():
        cuda = [item for item in items if item.get_closest_marker("cuda")]
        if cuda:
            config.hook.pytest_deselected(items=cuda)
            items[:] = [item for item in items if not item.get_closest_marker("cuda")]
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order within each group is kept
