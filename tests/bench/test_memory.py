"""The CPU memory measures: live tensor bytes from the profiler's allocator records, and the matmul rate's timer."""

import pytest
import torch

from blockmae.bench.probes import live_tensor_peak, matmul_flops


def test_live_tensor_peak_is_the_largest_moment_above_the_start():
    resident = torch.ones(3_000_000)  # alive before: not counted

    def fn():
        a = torch.ones(1_000_000)  # 4 MB
        b = torch.ones(2_000_000)  # 8 MB; 12 MB alive together
        del a, b
        c = torch.ones(500_000)  # 2 MB, after the peak
        return c.sum()

    peak = live_tensor_peak(fn)
    assert 12_000_000 <= peak < 12_500_000
    assert resident.numel() == 3_000_000


def test_live_tensor_peak_of_a_backward_counts_saved_activations():
    w = torch.randn(256, 256, requires_grad=True)

    def step(depth):
        def fn():
            x = torch.randn(512, 256)
            for _ in range(depth):
                x = torch.tanh(x @ w)  # each layer saves its output for backward: 512 x 256 x 4 B = 0.5 MiB
            x.sum().backward()
        return fn

    shallow, deep = live_tensor_peak(step(2)), live_tensor_peak(step(8))
    assert deep - shallow >= 6 * 512 * 256 * 4  # six more saved outputs alive at the peak


def test_matmul_rate_uses_the_steps_timer():
    cpu = matmul_flops(torch.device("cpu"), n=256, timer="cpu")
    wall = matmul_flops(torch.device("cpu"), n=256)
    assert cpu["timer"] == "cpu" and wall["timer"] == "wall"
    for rate in (cpu, wall):  # the rate is the product's FLOPs over the best time it reports
        assert rate["n"] == 256 and rate["flop_per_s"] == pytest.approx(2 * 256 ** 3 / rate["seconds"])
