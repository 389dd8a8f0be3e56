"""Run every benchmark module's ``main()``: ``python -m benchmarks [name ...]``.

``python -m benchmarks core monitor`` runs only ``bench_core.py`` and ``bench_monitor.py``.
"""

import importlib
import pathlib
import sys
import time

from rich.console import Console


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    here = pathlib.Path(__file__).parent
    names = sorted(p.stem for p in here.glob("bench_*.py"))
    if argv:
        names = [n for n in names if n.removeprefix("bench_") in argv or n in argv]
    console = Console()
    for name in names:
        console.rule(f"[bold]{name}")
        start = time.perf_counter()
        importlib.import_module(f"benchmarks.{name}").main()
        console.print(f"[dim]{name} took {time.perf_counter() - start:.1f} s[/dim]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
