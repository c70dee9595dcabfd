"""Maximum likelihood: starts, optimisation, inference and ``fit_ml``."""
