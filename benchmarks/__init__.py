"""Benchmarks of analogeq: memory over many ngspice solves, EP step time split, the naive
PySpice baseline and the NumPy backend. Run ``python -m benchmarks.run [--quick]``."""
