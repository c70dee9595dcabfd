"""Bayesian estimation by NUTS: the PyMC model, centring, sampling, draws and ``fit_bayes``."""
