"""The one JSON of `benchmarks/gpu_check.sh`: each step's command, exit status and seconds, the CUDA tests'
counts, the bench's rows and targets, and the paper-config run's losses and speed.

    python benchmarks/gpu_summary.py OUT      # OUT as given to gpu_check.sh; writes OUT/gpu_check.json

Exits 1 if a step failed (its exit status is not 0), so the check's own status says whether all passed.
"""

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def tests_summary(path: Path) -> dict | None:
    """Counts from pytest's JUnit XML (None when the tests never wrote it)."""
    if not path.is_file():
        return None
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    counts["failed"] = [case.get("name") for case in suite.iter("testcase")
                        if case.find("failure") is not None or case.find("error") is not None]
    return counts


def bench_summary(path: Path) -> dict | None:
    if not path.is_file():
        return None
    bench = json.loads(path.read_text())
    keep = ("name", "step_s", "clips_per_s", "x_baseline", "mfu", "step_bytes", "first_losses")
    return {"machine": bench.get("machine"), "loss_check": bench.get("loss_check"), "targets": bench.get("targets"),
            "rows": [{k: r.get(k) for k in keep} for r in bench.get("rows", [])]}


def run_summary(run: Path) -> dict | None:
    path = run / "summary.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()] if (run / "log.jsonl").is_file() else []
    return {"steps": summary.get("steps"), "first_losses": summary.get("first_losses"),
            "last_losses": summary.get("last_losses"), "held_out": summary.get("held_out"),
            "clips_per_s_last_window": log[-1].get("clips_per_s") if log else None}


def main(out: Path) -> int:
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()] \
        if (out / "steps.jsonl").is_file() else []
    result = {"steps": steps, "passed": bool(steps) and all(s["rc"] == 0 for s in steps),
              "tests": tests_summary(out / "tests.xml"),
              "bench": bench_summary(out / "bench-deit-s-cuda-bf16.json"),
              "paper_run": run_summary(out / "paper-run")}
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    for s in steps:
        print(f"{s['step']:<10} exit {s['rc']:<3} {s['seconds']:>4} s   log {s['log']}")
    print(f"gpu_check: {'passed' if result['passed'] else 'FAILED'}; summary {out / 'gpu_check.json'}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/gpu_summary.py OUT")
    sys.exit(main(Path(sys.argv[1])))
