"""What is fitted: the formula language, the model specification, the parameter layout, priors
and the bundled model files.
"""
