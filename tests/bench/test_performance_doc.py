"""docs/performance.md's generated tables are what the committed bench JSON gives (benchmarks/performance_doc.py)."""

import json
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the script's main(argv), run in this process (a process of its own would spend its time importing)
main = runpy.run_path(str(ROOT / "benchmarks" / "performance_doc.py"))["main"]


def test_the_committed_page_is_up_to_date(capsys):
    assert main(["--check"]) == 0, capsys.readouterr().out


def test_a_block_is_rewritten_from_its_json_and_a_stale_one_is_caught(tmp_path):
    results = {"settings": {"command": "blockmae bench --preset tiny", "threads": 1, "batch": 4, "repeats": 1,
                            "timer": "cpu"},
               "machine": {"cpu": "Test CPU", "cores": 2, "device": "cpu", "torch": "x", "python": "3",
                           "torch_threads_default": 2},
               "preset": "tiny", "preset_about": "small",
               "rows": [{"name": "hf", "about": "the | baseline", "task": "train", "clips_per_s": 8.0, "step_s": 0.25,
                         "x_baseline": 1.0, "time_x_e2e": 1.25, "step_bytes": 2 ** 21, "first_losses": [1.0]},
                        {"name": "e2e", "about": "ours", "task": "train", "clips_per_s": 10.0, "step_s": 0.2,
                         "x_baseline": 1.25, "time_x_e2e": 1.0, "step_bytes": 2 ** 21, "live_step_bytes": 2 ** 20,
                         "flops_per_step": 1e8, "first_losses": [1.00002]}],
               "matmul": {"flop_per_s": 1e9},  # MFU 1e8 / 0.2 s / 1e9 = 50%, recomputed from the stored numbers
               "loss_check": None, "targets": [{"target": "an old bar", "met": False, "detail": "0.9x"}]}
    (tmp_path / "performance").mkdir()
    (tmp_path / "performance" / "r.json").write_text(json.dumps(results))
    doc = tmp_path / "performance.md"
    doc.write_text("# P\n<!-- generated from performance/r.json -->\nold\n<!-- end generated -->\ntail\n")
    check = ["--doc", str(doc), "--check"]
    assert main(check) == 1
    assert main(["--doc", str(doc)]) == 0
    text = doc.read_text()
    # step x e2e+monitors: no e2e-K4-monitors row here; memory x e2e: live over live, or step peak over step peak
    assert "| e2e | ours | 10.00 | 1.25 | 1.00 | - | 2 | 1 | 1.00 | 50.0% |" in text
    assert "| hf | the \\| baseline | 8.00 | 1.00 | 1.25 | - | 2 | - | 1.00 | - |" in text
    # targets are judged by today's bars on the stored rows, not copied from the JSON; no bare | inside a cell
    assert "an old bar" not in text and "| ours e2e clips/s >= 1.0x Hugging Face" in text and "\\|diff\\|" in text
    assert text.startswith("# P\n") and text.endswith("<!-- end generated -->\ntail\n") and "old" not in text
    assert main(check) == 0
