"""Analyses of connectivity and its evolution.

Rewiring statistics (:mod:`.rewiring`), topographic-map measures (:mod:`.topomap`), plots
(:mod:`.plots`).
"""

from .plots import (
    plot_connectivity_evolution,
    plot_displacement_maps,
    plot_map_quality,
    plot_scaling,
    plot_timing_breakdown,
)
from .rewiring import (
    ConnectivityTimeline,
    DisplacementMaps,
    check_event_log,
    degree_stats,
    displacement_maps,
    event_rates,
    event_time_distance_histogram,
    expected_gaussian_degree,
    profile_dx0,
    select_projection,
)
from .topomap import (
    RFResult,
    SignificanceResult,
    bamford_initial_connectivity,
    map_quality,
    periodic_offset,
    receptive_fields,
    shuffle_within_post,
    significance_vs_control,
    significance_vs_shuffled,
)
from .training import (
    connectivity_snapshot,
    in_degree,
    plot_accuracy_history,
    plot_connectivity_histograms,
    plot_rewiring_proportion,
)

__all__ = [
    "connectivity_snapshot",
    "in_degree",
    "plot_accuracy_history",
    "plot_connectivity_histograms",
    "plot_rewiring_proportion",
    "ConnectivityTimeline",
    "DisplacementMaps",
    "RFResult",
    "SignificanceResult",
    "bamford_initial_connectivity",
    "check_event_log",
    "degree_stats",
    "displacement_maps",
    "event_rates",
    "event_time_distance_histogram",
    "expected_gaussian_degree",
    "map_quality",
    "periodic_offset",
    "plot_connectivity_evolution",
    "plot_displacement_maps",
    "plot_map_quality",
    "plot_scaling",
    "plot_timing_breakdown",
    "profile_dx0",
    "receptive_fields",
    "select_projection",
    "shuffle_within_post",
    "significance_vs_control",
    "significance_vs_shuffled",
]
