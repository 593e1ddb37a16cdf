"""Experiments that train to measure: model stitching at block boundaries, frozen-base continuation, and
`blockmae interfaces`, which runs them and writes their rows, verdicts and figures."""
