"""docs/performance.md's measured tables, written from the committed bench JSON, so the page and the numbers
cannot drift apart.

    python benchmarks/performance_doc.py            # rewrite every generated block
    python benchmarks/performance_doc.py --check    # exit 1 if a block differs from what its JSON gives

A generated block is the text between `<!-- generated from performance/NAME.json -->` and
`<!-- end generated -->`; it is `blockmae.bench.report.format_markdown` of that JSON.
"""

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from blockmae.bench.report import format_markdown  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
BLOCK = re.compile(r"(<!-- generated from (?P<json>[\w./-]+\.json) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def regenerate(text: str, docs: Path) -> str:
    def fill(match: re.Match) -> str:
        results = json.loads((docs / match["json"]).read_text())
        return match.group(1) + format_markdown(results) + "\n" + match.group(4)
    return BLOCK.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say whether the page is up to date")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    text = args.doc.read_text()
    if not BLOCK.search(text):
        print(f"{args.doc}: no generated block")
        return 1
    fresh = regenerate(text, args.doc.parent)
    if args.check:
        stale = fresh != text
        print(f"{args.doc}: {'out of date: run python benchmarks/performance_doc.py' if stale else 'up to date'}")
        return 1 if stale else 0
    args.doc.write_text(fresh)
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
