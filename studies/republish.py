"""Re-derive a published study's findings and figures from its committed rows, without its runs.

    python studies/republish.py studies/cpu_repro/study.yaml docs/results/cpu_repro [--work runs/republish]

When the rules or the figures change, the trained runs' rows stay valid: this rewrites findings.json,
findings.md, metrics.jsonl.gz and figures/ in the published directory from them. Where the study has a random
floor, its random-init encoders are analysed anew (seeds 0..N-1, the study's data and options), since they need
no training: their rows replace the published ones, and bring the rows that do not depend on the model at all
(chance per target, the trivial predictors including the per-clip oracle, on the same clips and masks as the
trained runs'). A study without a random floor gets those model-free rows from one random encoder. The reconstruction figure, drawn from a run's samples, is kept as it was.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from blockmae.analysis.extraction import dataset_name
from blockmae.analysis.figures import make_all_figures
from blockmae.analysis.options import Options
from blockmae.analysis.rows_file import PUBLISHED, ROWS, read_rows, write_rows
from blockmae.analysis.sources import Source, random_floor_count, random_floors
from blockmae.analysis.suite import Analysis
from blockmae.config import load_config, to_dict
from blockmae.study import decoder_masking_note, load_study, write_findings


def random_rows(study, work: Path) -> list[dict]:
    """The rows of the study's random-init encoders, analysed on its data with its options. A study without a
    random floor gets one encoder's rows that do not depend on the model (chance, the trivial predictors) only."""
    count = random_floor_count(study.random_floor)
    cfg = load_config(study.config, study.runs()[0][1])
    like = Source("like", study.config, cfg.train.regime, cfg.model.size, len(cfg.model.partition), None, to_dict(cfg))
    analysis = Analysis(work, Options(layers=study.layers, occlusion=study.occlusion, samples=0))
    for source in random_floors(like, max(count, 1)):
        for spec in study.data:
            print(f"analysing {source.run} on {dataset_name(spec)}", flush=True)
            analysis.run(source, spec)
    if count:
        return analysis.rows
    return [r for r in analysis.rows
            if r["metric"] == "chance_acc" or (r["metric"].startswith("recon_loss_") and r["block"] is None)]


def republish(study_path: str, published: Path, work: Path) -> dict:
    study = load_study(study_path)
    rows = [r for r in read_rows(published) if r["regime"] != "random"] + random_rows(study, work)
    write_rows(published / PUBLISHED, rows)
    (published / ROWS).unlink(missing_ok=True)  # replaced by the compressed rows
    figures = published / "figures"
    kept = work / "reconstructions.png"
    if (figures / "reconstructions.png").is_file():
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy2(figures / "reconstructions.png", kept)
    make_all_figures(rows, figures, samples=None)
    if kept.is_file():
        shutil.copy2(kept, figures / "reconstructions.png")
    summaries = json.loads((published / "summaries.json").read_text())
    note = decoder_masking_note(study)
    source = f"Re-derived from the committed rows by `python studies/republish.py {study_path} {published}`."
    return write_findings(published, rows, summaries, "\n> ".join(filter(None, [note, source])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="the study file the published outputs came from")
    parser.add_argument("published", type=Path, help="the published directory (metrics.jsonl.gz, summaries.json, ...)")
    parser.add_argument("--work", type=Path, default=Path("runs/republish"),
                        help="where the random encoders' features are cached (default: runs/republish/<name>)")
    args = parser.parse_args()
    findings = republish(args.study, args.published, args.work / args.published.name)
    for number, f in findings.items():
        print(f"finding {number}: {f['verdict']}")


if __name__ == "__main__":
    main()
