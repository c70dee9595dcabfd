"""What a model is fitted to: design matrices, bundled data sets, simulation and the internal
standardisation.
"""
