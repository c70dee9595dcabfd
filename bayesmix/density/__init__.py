"""The log-density: its primitives, the quadrature over school effects, and the compiled and
fused backends.
"""
