"""Evaluation: metrics (acc@km, median error, GeoScore), benchmark datasets, runners, ablations."""
