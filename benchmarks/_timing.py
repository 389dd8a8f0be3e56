"""Timing helpers shared by the benchmarks: interleaved runs, medians, ratio tables."""

import gc
import statistics
import time

from rich.console import Console
from rich.table import Table


def best_of(fn, repeat=5):
    """Best wall time of ``repeat`` calls of ``fn`` (seconds): the least disturbed run."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(fns, repeat=5):
    """Best time of each of ``fns`` (a dict), run in turns so machine noise hits all alike."""
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def interleaved_median(fns, calls=3000):
    """Median latency (seconds) of each of ``fns`` over ``calls`` calls made in turns."""
    times = {name: [] for name in fns}
    perf = time.perf_counter
    for _ in range(calls):
        for name, fn in fns.items():
            start = perf()
            fn()
            times[name].append(perf() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def ratio_table(title, rows, columns=("ours", "reference"), unit="ms", scale=1e3, target=None):
    """Print a rich table: one row per measurement, both times and their ratio."""
    table = Table(title=title)
    table.add_column("measurement")
    for col in columns:
        table.add_column(f"{col} ({unit})", justify="right")
    table.add_column("ratio", justify="right")
    if target:
        table.add_column("target", justify="right")
    for row in rows:
        name, values = row[0], row[1]
        ratio = values[0] / values[1] if values[1] else float("nan")
        cells = [name, *[f"{v * scale:,.3f}" for v in values], f"{ratio:.3f}x"]
        if target:
            cells.append(row[2] if len(row) > 2 else "")
        table.add_row(*cells)
    Console().print(table)
