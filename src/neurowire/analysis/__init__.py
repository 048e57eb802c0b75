"""Analyses of connectivity and its evolution (rewiring statistics, topographic-map measures, plots)."""
