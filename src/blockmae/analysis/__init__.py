"""The metric suite: every metric over runs, checkpoints and datasets (extraction, its announced cost, the metric
families), the tidy rows they make and their files, and the figures drawn from rows. What the rows say (findings,
verdicts, the report) is `report`; experiments that train to measure are `experiments`."""
