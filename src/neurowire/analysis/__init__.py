"""Analyses of connectivity and its evolution.

Rewiring statistics (:mod:`.rewiring`), topographic-map measures (:mod:`.topomap`), what
training restores after a lesion (:mod:`.lesion`), plots (:mod:`.plots`), figures of
homeostatic structural plasticity (:mod:`.homeostasis`).
"""

from .homeostasis import curve_bands, plot_lesion_recovery, plot_msp_curves
from .lesion import (
    NOT_RECOVERED,
    lesion_curve,
    lesion_recovery,
    lesion_summary,
    plot_lesion_accuracy,
)
from .placement import (
    PlacementReport,
    PlacementStats,
    TrialCounts,
    channel_information,
    channel_rates,
    placement_report,
    placement_stats,
    plot_synapse_placement,
    synapses_per_post,
    synapses_per_pre,
    trial_counts,
)
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
    plot_l1_selection,
    plot_rewiring_proportion,
)

__all__ = [
    "curve_bands",
    "plot_lesion_recovery",
    "plot_msp_curves",
    "NOT_RECOVERED",
    "lesion_curve",
    "lesion_recovery",
    "lesion_summary",
    "plot_lesion_accuracy",
    "PlacementReport",
    "PlacementStats",
    "TrialCounts",
    "channel_information",
    "channel_rates",
    "placement_report",
    "placement_stats",
    "plot_synapse_placement",
    "synapses_per_post",
    "synapses_per_pre",
    "trial_counts",
    "connectivity_snapshot",
    "in_degree",
    "plot_accuracy_history",
    "plot_connectivity_histograms",
    "plot_l1_selection",
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
