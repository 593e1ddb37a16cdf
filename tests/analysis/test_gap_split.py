"""Where the blockwise gap lives (finding 9): each outcome of the rule over frozen-base continuation rows."""

import pytest

from blockmae.report.gap_split import continuation_markdown, gap_split_finding
from helpers import continuation_rows

E2E, SIM = [60.0, 61.0, 59.5], [50.0, 50.5, 49.0]  # a 10.3 pp gap, clear of zero


@pytest.mark.parametrize("continued, verdict", [
    ({0: [51, 51, 50], 1: [50, 51, 50], 2: [50, 50, 50], 3: [50, 50, 50]}, "budget too short"),
    ({0: [60, 60, 60], 1: [59, 59, 59], 2: [58, 58, 58], 3: [57, 57, 57]}, "extra steps"),
    ({0: [60, 60, 60], 1: [52, 52, 52], 2: [51, 51, 51], 3: [50, 50, 50]}, "lower blocks"),
    ({0: [60, 60, 60], 1: [59, 59, 59], 2: [52, 52, 52], 3: [50, 50, 50]}, "upper blocks (above stage 1)"),
])
def test_each_outcome(continued, verdict):
    finding = gap_split_finding(continuation_rows(E2E, SIM, continued))
    assert finding["verdict"] == verdict
    sim = finding["by_regime"]["simultaneous"]
    assert sim["gap_pp"]["mean"] == pytest.approx(31 / 3)  # paired by seed: (10 + 10.5 + 10.5) / 3
    share = (sum(continued[1]) / 3 - sum(SIM) / 3) / (31 / 3)
    assert sim["share"][1] == pytest.approx(share)
    assert "| Simultaneous | +10.3 [" in continuation_markdown(continuation_rows(E2E, SIM, continued))


def test_no_gap_and_no_rows():
    close = gap_split_finding(continuation_rows([50.5, 51, 50], SIM, {0: [51, 51, 51]}))
    assert close["verdict"] == "no gap"  # 0.7 pp: below the 2 pp margin
    noisy = gap_split_finding(continuation_rows([60, 45, 62], SIM, {0: [60, 60, 60]}))
    assert noisy["verdict"] == "no gap"  # 6 pp on average, but the interval reaches 0
    assert gap_split_finding([])["verdict"].startswith("not measured")
    no_e2e = [r for r in continuation_rows(E2E, SIM, {0: [60, 60, 60]}) if r["regime"] != "e2e"]
    assert gap_split_finding(no_e2e)["verdict"].startswith("inconclusive")
