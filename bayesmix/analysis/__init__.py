"""Analyses of fitted results: comparison, LOO, class selection, school effects, predictive
checks and Monte Carlo studies.
"""
