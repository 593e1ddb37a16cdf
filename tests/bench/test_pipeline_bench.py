"""`blockmae bench --pipeline`: one process against a 2-stage pipeline under torchrun (gloo, CPU)."""

import json
import os
import statistics

import pytest

from blockmae.bench import main
from blockmae.bench.pipeline import PARTS, analyse, median_round, time_per_step

# 6 training processes, each mostly importing: scenes, not digits, spares each one scikit-learn (the digits' source
# images); 16 x 16 pixel frames and 4 steps keep the 2-thread `single` runs short on a busy 2-core machine; one round
# (the median of several is test_the_typical_round_is_the_median_one's)
SMALL = ["--set", "model.depth=4", "--set", "model.frames=4", "--set", "model.image_size=16", "--set",
         "data.train=scenes,n=48"]


@pytest.mark.slow
def test_pipeline_bench_times_both_and_accounts_for_every_rank(tmp_path, capsys):
    results = main(["--pipeline", "--stages", "2", "--steps", "4", "--batch", "4", "--repeats", "1", *SMALL, "--runs",
                    str(tmp_path / "runs"), "--json", str(tmp_path / "out.json")])
    runs = tmp_path / "runs"
    assert set(results["runs"]) == {"single", "single-share", "pipeline", "ddp"}
    for name, row in results["runs"].items():
        # each round's rate is its run's log: the median of the logged windows after the first (fill, warm-up)
        for r, rate in enumerate(row["per_round"], start=1):
            log = [json.loads(line) for line in (runs / f"{name}-{r}" / "log.jsonl").read_text().splitlines()]
            assert rate == statistics.median(entry["clips_per_s"] for entry in log[1:])
            assert json.loads((runs / f"{name}-{r}" / "summary.json").read_text())["steps"] == 4  # as asked
        assert row["per_round"] == [row["clips_per_s"]]
        assert row["x_single"] == pytest.approx(row["clips_per_s"] / results["runs"]["single"]["clips_per_s"])
    assert results["runs"]["single"]["x_single"] == 1.0
    assert results["settings"]["partition"] == [2, 2]
    assert results["settings"]["threads_per_rank"] == max(1, os.cpu_count() // 2)  # default: all cores, split
    assert results["weights"]["ok"] and set(results["weights"]["max_abs_diff"]) == {"pipeline", "ddp"}
    assert max(results["weights"]["max_abs_diff"].values()) < 1e-4  # the same training
    ranks = results["pipeline_time"]
    # the time breakdown is the ranks' clocks of the (median) pipeline round
    clocks = json.loads((runs / "pipeline-1" / "summary.json").read_text())["pipeline_time"]
    assert ranks == time_per_step(clocks) and [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["wait_input"] == 0  # stage 1 has nobody to wait for
    a = results["analysis"]
    busiest = max(r["busy"] for r in ranks)
    assert a["ideal_clips_per_s"] == pytest.approx(4 / busiest)  # the batch over the busiest rank's step
    assert a["efficiency"] == pytest.approx(results["runs"]["pipeline"]["clips_per_s"] / a["ideal_clips_per_s"])
    assert a["balance"] == pytest.approx(min(r["busy"] for r in ranks) / busiest)
    assert a["pipeline_x_ddp"] == pytest.approx(
        results["runs"]["pipeline"]["clips_per_s"] / results["runs"]["ddp"]["clips_per_s"])
    assert json.loads((tmp_path / "out.json").read_text())["analysis"] == results["analysis"]
    report = capsys.readouterr().out
    assert "| pipeline | 2 x " in report and "where the pipeline's time goes" in report


def test_the_typical_round_is_the_median_one():
    rounds = [{"run": name, "clips_per_s": rate} for name, rate in (("a", 3.0), ("b", 1.0), ("c", 2.0), ("d", 5.0))]
    assert median_round(rounds[:3]) == "c"  # the middle rate, whatever the order the rounds ran in
    assert median_round(rounds) == "a"  # an even count: the upper median
    assert median_round(rounds[:1]) == "a"


def test_time_per_step_and_the_ideal_rate_follow_from_the_clocks():
    clocks = [{"steps": 10, "total_s": 10.0, "data_s": 1.0, "compute_s": 7.0, "wait_input_s": 0.0, "wait_send_s": 1.5,
               "checkpoint_s": 0.0, "other_s": 0.5},
              {"steps": 10, "total_s": 10.0, "data_s": 1.0, "compute_s": 5.0, "wait_input_s": 3.5, "wait_send_s": 0.0,
               "checkpoint_s": 0.0, "other_s": 0.5}]
    ranks = time_per_step(clocks)
    assert ranks[0]["busy"] == pytest.approx(0.8) and ranks[1]["busy_share"] == pytest.approx(0.6)
    assert set(PARTS) <= set(ranks[0])
    results = {"settings": {"batch": 8, "device": "cpu", "stages": 2, "threads_per_rank": 1}, "machine": {"cores": 2},
               "pipeline_time": ranks,
               "runs": {"pipeline": {"clips_per_s": 8.0}, "single-share": {"clips_per_s": 8 / 1.2}}}  # no ddp row
    a = analyse(results)
    assert a["pipeline_x_ddp"] is None and a["busiest_rank"] == 0
    assert a["ideal_clips_per_s"] == pytest.approx(10.0)  # 8 clips / 0.8 s
    assert a["efficiency"] == pytest.approx(0.8) and a["balance"] == pytest.approx(0.6 / 0.8)
    assert a["extra_work_share"] == pytest.approx(1.4 / 1.2 - 1) and not a["oversubscribed"]
    results["settings"]["stages"] = 4
    assert analyse(results)["oversubscribed"]  # 4 processes on 2 cores


def test_pipeline_bench_refuses_a_partition_that_disagrees_with_stages(tmp_path):
    with pytest.raises(SystemExit, match="has 3 stages but --stages is 2"):
        main(["--pipeline", "--stages", "2", "--set", "model.partition=[4,4,4]", "--runs", str(tmp_path)])
