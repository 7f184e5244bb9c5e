"""vscr_core: Viewpoint and Scale Consistency Reinforcement (Teng et al., IJCV 2021) for UAV
vehicle re-identification."""

__version__ = "0.1.0"
