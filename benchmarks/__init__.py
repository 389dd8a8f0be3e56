"""Side-by-side benchmarks: ``python -m benchmarks`` (or ``make bench``) runs every ``bench_*.py``."""
