"""The loss table `blockmae pretrain` and the demo print: every stage beside the four trivial predictors, and its
margin below the better of the lookup table and the copy."""

from blockmae.train.logging import learning_warnings, loss_table

BASELINES = {"zero": 1.0, "position_mean": 0.937, "visible_mean": 0.71, "oracle_constant": 0.65}


def summary(held_out, baselines=BASELINES):
    n = len(held_out)
    return {"first_losses": [1.0] * n, "last_losses": [0.7] * n,
            "held_out": {"losses": held_out, "baselines": dict(baselines)}}


def test_margin_is_below_the_better_of_lookup_and_copy():
    table = loss_table({"e2e": summary([0.72, 0.7029])})
    first, second = table.splitlines()[1:3]
    assert first.split()[:6] == ["e2e", "1", "1.0000", "0.7000", "0.7200", "-1.4"]  # above the copy's 0.71
    assert first.split()[6:] == ["1.0000", "0.9370", "0.7100", "0.6500"]  # zero, lookup, copy, oracle
    assert second.split()[5] == "+1.0" and len(second.split()) == 6  # the trivial losses once per run
    header = table.splitlines()[0].split()
    assert header[-4:] == ["zero", "lookup", "copy", "oracle"] and "below%" in header


def test_warnings_name_the_predictor_the_top_stage_does_not_beat():
    above_copy = learning_warnings({"a": summary([0.72])})
    assert len(above_copy) == 1 and "visible-mean predictor's 0.7100" in above_copy[0]
    older = {k: v for k, v in BASELINES.items() if k in ("zero", "position_mean")}  # a summary from before the copy
    above_lookup = learning_warnings({"b": summary([0.95], older)})
    assert len(above_lookup) == 1 and "position-mean predictor's 0.9370" in above_lookup[0]
    assert learning_warnings({"c": summary([0.70])}) == []
    assert "-" in loss_table({"b": summary([0.95], older)}).splitlines()[1].split()  # no oracle scored: a dash
