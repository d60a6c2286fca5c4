"""Tools over the records people act on: anomalies, incidents, the call graph, feedback."""
