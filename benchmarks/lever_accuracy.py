"""What each lever that makes blockwise (simultaneous K=4) training cheaper costs in accuracy: pretrain the bench's
`tiny` preset (configs/tiny.yaml, its own schedule) once per lever and seed, and end to end per seed as the reference,
probe the final block on the grammar's latents, and report when each run left the plateau (in E2E's time with
--bench). The same as `blockmae bench --accuracy`.

    python benchmarks/lever_accuracy.py [--levers none,dmask0.5,...] [--seeds 0,1] [--bench bench-tiny.json]
                                        [--set KEY=VALUE ...] [--runs DIR] [--json PATH] [--no-e2e]

Numbers and the commands that produced them: docs/performance.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from blockmae.bench import main  # noqa: E402

if __name__ == "__main__":
    main(["--accuracy"] + sys.argv[1:])
