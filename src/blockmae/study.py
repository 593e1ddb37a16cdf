"""`blockmae study`: a grid of pretraining runs (regimes x K x seeds), analysed together, findings measured.

A study file (YAML) names a base config, its overrides, the grid and the evaluation data:

    config: tiny
    overrides: [train.max_steps=1200]
    grid:                      # every combination is one run, named e.g. e2e-K4-s0
      train.regime: [e2e, simultaneous, sequential]
      model.partition: [4, 6]
      train.seed: [0, 1]
    data: [digits, gratings, gratings2]
    random_floor: true         # also analyse 3 randomly initialised encoders of the same shape (an int: that many)
    jobs: 2                    # runs trained at once, each on cores // jobs threads
    attentive: false           # also the attentive probe (per block, and per layer when layers: true)
    sequential_budget: total   # total: sequential shares max_steps over its K phases (E2E's total compute);
                               # per-stage: each phase gets the full max_steps (the budget finding 6 needs)
    interfaces:                # optional: `blockmae interfaces` on the runs of these regimes (findings 8, 9)
      data: scenes,n=384
      regimes: [e2e, simultaneous]
      stitch_steps: 50         # 0: no stitching
      continue_steps: 150      # 0: no frozen-base continuation

Re-running resumes: finished runs are skipped, interrupted ones continue from their last checkpoint,
and the analysis reuses its feature cache.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import shutil
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path

import yaml

from .analysis.rows_file import PUBLISHED, ROWS, read_rows, write_rows
from .config import ConfigError, config_path, load_config
from .devices import usable_cpus
from .regimes import DEFAULT, REFERENCE, SEQUENTIAL

PR_SET_PDEATHSIG = 1  # linux/prctl.h

# Short forms of grid keys in run names: e2e-K4-s0.
_NAME_PARTS = {"train.regime": lambda v: str(v), "model.partition": lambda v: f"K{v}", "train.seed": lambda v: f"s{v}"}


@dataclass
class Study:
    config: str
    grid: dict[str, list]
    data: list[str]
    overrides: list[str] = field(default_factory=list)
    random_floor: bool | int = True  # random-init encoders analysed beside the runs: True = 3, or how many
    layers: bool = True  # probes and CKA per layer as well as per block
    occlusion: bool = True
    attentive: bool = False  # also the attentive probe on every block (and layer): attentive_probe_acc rows
    jobs: int = 1
    interfaces: dict | None = None  # {data, regimes, stitch_steps, continue_steps}: see the module docstring
    sequential_budget: str = "total"  # total: sequential shares max_steps over its K phases; per-stage: K x max_steps

    def runs(self) -> list[tuple[str, list[str]]]:
        """(name, overrides) for every combination of the grid, in the order written."""
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            name = "-".join(_NAME_PARTS.get(k, lambda v, k=k: f"{k.split('.')[-1]}{v}")(v) for k, v in zip(keys, values))
            overrides = list(self.overrides) + [f"{k}={v}" for k, v in zip(keys, values)]
            out.append((name, overrides + self._budget(overrides)))
        return out

    def _budget(self, overrides: list[str]) -> list[str]:
        """With the per-stage budget, a sequential run trains each of its K phases for the full max_steps."""
        if self.sequential_budget == "total":
            return []
        cfg = load_config(self.config, overrides)
        if cfg.train.regime != SEQUENTIAL:
            return []
        if cfg.train.max_steps is None:
            raise ConfigError("sequential_budget: per-stage needs train.max_steps in the study's config or overrides")
        return [f"train.max_steps={cfg.train.max_steps * len(cfg.model.partition)}"]


def load_study(path: str | Path) -> Study:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {path} not found")
    raw = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in fields(Study)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; a study file has {', '.join(sorted(known))}")
    missing = [k for k in ("config", "grid", "data") if k not in raw]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)} (see `blockmae study --help` for an example)")
    if not isinstance(raw["grid"], dict) or not all(isinstance(v, list) and v for v in raw["grid"].values()):
        raise ConfigError(f"{path}: grid must map dotted config keys to non-empty lists, got {raw['grid']!r}")
    return validate(Study(**raw), str(path))


SEQUENTIAL_BUDGETS = ("total", "per-stage")
INTERFACE_KEYS = {"data": None, "regimes": [REFERENCE, DEFAULT], "stitch_steps": 100, "continue_steps": 0}


def validate(study: Study, origin: str = "study") -> Study:
    """Check every run's config before anything trains; resolve the base config to a file path."""
    if not isinstance(study.jobs, int) or study.jobs < 1:
        raise ConfigError(f"{origin}: jobs={study.jobs!r}, expected a positive integer")
    if study.sequential_budget not in SEQUENTIAL_BUDGETS:
        raise ConfigError(f"{origin}: sequential_budget={study.sequential_budget!r}, expected one of "
                          f"{', '.join(SEQUENTIAL_BUDGETS)}")
    if not isinstance(study.random_floor, int) or study.random_floor < 0:  # a bool is an int: true, false, 0, 3
        raise ConfigError(f"{origin}: random_floor={study.random_floor!r}, expected true, false or a number of "
                          "random encoders")
    if study.interfaces is not None:
        study.interfaces = check_interfaces(study.interfaces, study.grid.get("train.regime", []), origin)
    base = Path(study.config) if Path(study.config).is_file() else config_path(study.config)
    study.config = str(base)
    for _, overrides in study.runs():
        load_config(base, overrides)
    return study


def check_interfaces(spec, regimes: list, origin: str) -> dict:
    """The study's `interfaces` block with its defaults filled in, or a ConfigError naming what is wrong."""
    if not isinstance(spec, dict) or not spec.get("data"):
        raise ConfigError(f"{origin}: interfaces must be a mapping with at least data (a data spec), e.g. "
                          "{data: 'scenes,n=384', continue_steps: 150}")
    unknown = sorted(set(spec) - set(INTERFACE_KEYS))
    if unknown:
        raise ConfigError(f"{origin}: unknown interfaces key(s) {', '.join(unknown)}; it has "
                          f"{', '.join(INTERFACE_KEYS)}")
    spec = {**INTERFACE_KEYS, **spec}
    missing = [r for r in spec["regimes"] if r not in regimes]
    if missing:
        raise ConfigError(f"{origin}: interfaces.regimes {missing} are not in the grid's train.regime {regimes}")
    steps = (spec["stitch_steps"], spec["continue_steps"])
    if not all(isinstance(n, int) and n >= 0 for n in steps) or not any(steps):
        raise ConfigError(f"{origin}: interfaces.stitch_steps and continue_steps must be integers >= 0, one of "
                          f"them positive (got {steps[0]!r}, {steps[1]!r})")
    return spec


def die_with_parent() -> None:
    """In a worker: be sent SIGTERM when the process that started it dies (Linux). A study killed by a signal
    other than Ctrl-C (which reaches the whole process group) would otherwise leave its workers training on,
    each holding its run's lock, so that restarting the study refuses."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: no such call; the workers then outlive a killed study
        pass


def _pretrain(config: str, overrides: list[str], out: str, threads: int) -> dict:
    """One run in a worker process (its own torch threads, so concurrent runs do not oversubscribe)."""
    import torch

    from .train.engine import pretrain

    torch.set_num_threads(threads)
    cfg = load_config(config, overrides + ["train.progress=false"])
    summary = pretrain(cfg, out)
    return summary


def _steps_done(run_dir: Path) -> int:
    """The last logged step of a run (0 before its first log row)."""
    try:
        lines = (run_dir / "log.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def train_all(study: Study, out: Path, jobs: int | None = None, progress: bool = True,
              runs: list[tuple[str, list[str]]] | None = None) -> dict[str, dict]:
    """Pretrain every run not finished yet, `jobs` at a time; returns each run's summary (summary.json).

    `runs`: (name, overrides) of the study's config to train instead of its grid. One progress bar counts the
    logged steps of all runs (the workers themselves stay quiet).
    """
    from tqdm import tqdm

    jobs = jobs or study.jobs
    threads = max(1, usable_cpus() // jobs)
    runs = study.runs() if runs is None else runs
    todo = [(name, o) for name, o in runs if not (out / "runs" / name / "summary.json").is_file()]
    print(f"{len(runs)} runs, {len(runs) - len(todo)} already done; training {len(todo)} "
          f"({jobs} at a time, {threads} thread(s) each) in {out / 'runs'}", flush=True)
    trains = [load_config(study.config, o).train for _, o in todo]
    total = sum(t.max_steps + t.monitor_fit_steps for t in trains if t.max_steps)
    bar = tqdm(total=total, desc=f"pretrain {len(todo)} runs", unit="step", disable=not progress or not todo,
               dynamic_ncols=True)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=die_with_parent) as pool:
        futures = [pool.submit(_pretrain, study.config, o, str(out / "runs" / name), threads) for name, o in todo]
        while not all(f.done() for f in futures):
            time.sleep(2)
            bar.update(sum(_steps_done(out / "runs" / name) for name, _ in todo) - bar.n)
        for f in futures:
            f.result()  # a failed run raises here, with the worker's traceback
    bar.update(total - bar.n)
    bar.close()
    return {name: json.loads((out / "runs" / name / "summary.json").read_text()) for name, _ in runs}


def training_span(out: Path, names: list[str]) -> float:
    """Wall seconds from the first run's start (its config.yaml) to the last run's end (its summary.json).

    Read from the run directories, so a study resumed for its analysis still reports how long training took."""
    runs = [out / "runs" / name for name in names]
    start = min((r / "config.yaml").stat().st_mtime for r in runs)
    end = max((r / "summary.json").stat().st_mtime for r in runs)
    return end - start


def run_study(study: Study | str | Path, out: str | Path, jobs: int | None = None,
              publish: str | Path | None = None) -> tuple[Path, dict, list[dict], dict]:
    """Train, analyse, measure the findings. Returns (report path, run summaries, metric rows, findings).

    `publish` copies the small outputs (metrics, figures, findings, training summaries; no checkpoints)
    to a directory meant for git.
    """
    from .report.analyze import analyze
    from .analysis.options import Options

    study = validate(study) if isinstance(study, Study) else load_study(study)
    note = decoder_masking_note(study)
    if note:
        print(note, flush=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    summaries = train_all(study, out, jobs)
    timings["train_s"] = training_span(out, [name for name, _ in study.runs()])
    (out / "summaries.json").write_text(json.dumps(summaries, indent=1))

    extra = []
    if study.interfaces:
        t = time.perf_counter()
        extra = study_interfaces(study, out)
        timings["interfaces_s"] = time.perf_counter() - t
    t = time.perf_counter()
    options = Options(layers=study.layers, occlusion=study.occlusion, attentive=study.attentive)
    report = analyze([str(out / "runs" / name) for name, _ in study.runs()], study.data, out / "analysis", options,
                     with_random_floor=study.random_floor, extra_rows=extra)
    timings["analysis_s"] = time.perf_counter() - t

    rows = read_rows(out / "analysis" / ROWS)
    findings = write_findings(out, rows, summaries, note)
    (out / "timings.json").write_text(json.dumps(timings, indent=1))
    if publish:
        publish_outputs(out, Path(publish))
    return report, summaries, rows, findings


def study_interfaces(study: Study, out: Path) -> list[dict]:
    """`blockmae interfaces` on the runs of the study's interfaces regimes, in out/interfaces; rows from an earlier
    run with the same settings are reused (continued runs are reused anyway), its report and figures written anew."""
    from .experiments.interfaces import interface_rows, write_interfaces

    spec, where = study.interfaces, out / "interfaces"
    runs = [str(out / "runs" / name) for name, o in study.runs()
            if any(f"train.regime={r}" in o for r in spec["regimes"])]
    settings = {**spec, "runs": runs}
    done = where / "settings.json"
    if done.is_file() and json.loads(done.read_text()) == settings and (where / ROWS).is_file():
        rows = read_rows(where / ROWS)
    else:
        rows = interface_rows(runs, spec["data"], where, stitch_steps=spec["stitch_steps"],
                              continue_steps=spec["continue_steps"], say=lambda m: print(m, flush=True))
    write_interfaces(rows, where, spec=spec["data"], stitch_steps=spec["stitch_steps"] or None)
    done.write_text(json.dumps(settings, indent=1))
    return rows


def decoder_masking_note(study: Study) -> str | None:
    """A warning when the study's regimes train with different decoder masking (its default differs by regime,
    `config.validate.decoder_mask_default`), so that a comparison between them also compares objectives."""
    ratios: dict[str, set[str]] = {}
    for _, overrides in study.runs():
        cfg = load_config(study.config, overrides)
        ratios.setdefault(cfg.train.regime, set()).add(str(cfg.model.decoder.mask_ratio))
    if len(set().union(*ratios.values())) < 2:
        return None
    each = ", ".join(f"{regime} {' / '.join(sorted(values))}" for regime, values in ratios.items())
    return (f"Note: the regimes train with different decoder masking (model.decoder.mask_ratio: {each}), so their "
            "comparison includes that objective change; set model.decoder.mask_ratio in the study's overrides to "
            "compare them under one objective.")


def write_findings(dest: Path, rows: list[dict], summaries: dict, note: str | None = None) -> dict:
    """The findings measured on a study's rows and run summaries, written to dest/findings.json and
    dest/findings.md (after `note`, if any; then whether depth pays per trained group, by the loss rule and by the
    probe rule)."""
    from .analysis.rows import final_rows
    from .report.depth_rule import depth_rule_markdown
    from .report.findings import findings_markdown, measure_findings
    from .report.probe_rule import study_probe_markdown

    findings = measure_findings(rows, summaries)
    (dest / "findings.json").write_text(json.dumps(findings, indent=1))
    final = final_rows(rows)
    depth = "".join(f"\n{section}" for section in (depth_rule_markdown(final), study_probe_markdown(final)) if section)
    (dest / "findings.md").write_text((f"> {note}\n\n" if note else "") + findings_markdown(findings) + depth)
    return findings


def publish_outputs(out: Path, dest: Path) -> None:
    """Copy what the report is built from (no checkpoints, no feature cache) to `dest`; the rows as
    metrics.jsonl.gz."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("summaries.json", "findings.json", "findings.md", "timings.json"):
        shutil.copy2(out / name, dest / name)
    if (out / "interfaces" / "interfaces.md").is_file():  # its rows are in metrics.jsonl, its figures in figures/
        shutil.copy2(out / "interfaces" / "interfaces.md", dest / "interfaces.md")
    write_rows(dest / PUBLISHED, read_rows(out / "analysis" / ROWS))  # compressed: a clone stays small
    (dest / ROWS).unlink(missing_ok=True)  # an earlier publication's uncompressed rows
    if (dest / "figures").exists():
        shutil.rmtree(dest / "figures")
    shutil.copytree(out / "analysis" / "figures", dest / "figures")
