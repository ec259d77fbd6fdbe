"""Mirroring run directories into experiment trackers (MLflow). The run directory stays the record:
a tracker is fed from its files, live while a run trains and afterwards (`dlrun track`), by one code
path; a tracker that is down never stops training."""
