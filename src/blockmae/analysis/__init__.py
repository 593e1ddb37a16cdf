"""Analysis layer: run every metric over runs and datasets, draw the figures, write the report."""
