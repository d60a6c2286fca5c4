"""Tools over what the detector computes and decides: baselines, and recalculation."""
