"""Scan a collection before a long run: which entries decode, which do not, and why.

`blockmae datasets check SPEC` prints the result of `check_dataset`. For video collections each
entry is opened, its length checked against `min_frames`, and its first and last frames
decoded (this catches missing, empty, truncated, undecodable and too-short files without
decoding every frame); other datasets are read item by item.
"""

from __future__ import annotations

from collections import Counter

from tqdm.auto import tqdm

from .spec import build_dataset
from .video import VideoDecodeError


def check_dataset(spec: str, split: str = "train", *, frames: int, image_size: int, channels: int = 3,
                  progress: bool = True) -> dict:
    """{"total", "ok", "failed": [{"path", "reason", "detail"}], "reasons": {reason: count}} for every entry of `spec`."""
    dataset = build_dataset(spec, split, frames=frames, image_size=image_size, channels=channels)
    probe = getattr(dataset, "check", None)
    entries = getattr(dataset, "entries", None)
    failed = []
    for i in tqdm(range(len(dataset)), desc=f"check {spec}", unit="file", disable=not progress, dynamic_ncols=True):
        try:
            if probe is not None:
                probe(i)
            else:
                dataset[i]
        except VideoDecodeError as e:
            path = e.path if e.reason is not None else (entries[i].path if entries else str(i))
            failed.append({"path": path, "reason": e.reason or "undecodable", "detail": e.detail})
    reasons = dict(Counter(f["reason"] for f in failed).most_common())
    return {"total": len(dataset), "ok": len(dataset) - len(failed), "failed": failed, "reasons": reasons}


def format_report(report: dict, limit: int = 20) -> str:
    """A few lines for the terminal: the counts, then up to `limit` failures."""
    lines = [f"{report['ok']} of {report['total']} entries decode"
             + (f"; {len(report['failed'])} fail: " + ", ".join(f"{k} {v}" for k, v in report["reasons"].items())
                if report["failed"] else "")]
    for f in report["failed"][:limit]:
        lines.append(f"  {f['reason']:<12} {f['path']}" + (f"  ({f['detail']})" if f.get("detail") else ""))
    if len(report["failed"]) > limit:
        lines.append(f"  ... and {len(report['failed']) - limit} more")
    return "\n".join(lines)
