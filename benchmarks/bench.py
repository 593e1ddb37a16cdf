"""Training and extraction throughput and peak memory: ours (every regime, and the levers) against
Hugging Face VideoMAE, each configuration in a fresh process. The same as `blockmae bench`.

    python benchmarks/bench.py [--preset tiny|deit-s] [--quick] [--threads N] [--repeats R] [--json PATH]

Numbers and the commands that produced them: docs/performance.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from blockmae.bench import main  # noqa: E402

if __name__ == "__main__":
    main()
