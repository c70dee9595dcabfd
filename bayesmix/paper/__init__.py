"""The paper's own analyses, an application built on the library: the Section 2 and 3 runs,
their population values and the demo. The library never imports it.
"""
