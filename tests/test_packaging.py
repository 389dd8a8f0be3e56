"""What the package declares about itself is true: its license file, its classifiers, its py.typed."""

import configparser
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _metadata():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "setup.cfg")
    return parser


def _classifiers():
    return [c.strip() for c in _metadata()["metadata"]["classifiers"].splitlines() if c.strip()]


def test_license_file_matches_the_declared_license():
    meta = _metadata()["metadata"]
    assert meta["license"] == "BSD-3-Clause"
    assert meta["license_files"] == "LICENSE"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n")
    assert re.search(r"^Copyright \(c\) \d{4}, the ml_toolbox developers$", text, re.M)
    # the three clauses of BSD-3-Clause, and its disclaimer
    for clause in ("Redistributions of source code must retain",
                   "Redistributions in binary form must reproduce",
                   "Neither the name of the copyright holder nor the names of its",
                   'THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"'):
        assert clause in text


def test_classifiers_are_known_to_pypi():
    from trove_classifiers import classifiers, deprecated_classifiers

    declared = _classifiers()
    assert [c for c in declared if c not in classifiers] == []
    assert [c for c in declared if c in deprecated_classifiers] == []
    # PEP 639: the license is the `license` field; a License classifier would say it twice
    assert [c for c in declared if c.startswith("License ::")] == []


def test_python_classifiers_fit_python_requires():
    floor = _metadata()["options"]["python_requires"].strip()
    assert floor.startswith(">=")
    low = tuple(int(p) for p in floor[2:].split("."))
    for c in _classifiers():
        version = re.fullmatch(r"Programming Language :: Python :: (\d+)\.(\d+)", c)
        if version:
            assert (int(version[1]), int(version[2])) >= low, c


def _store_works_without_fcntl():
    """Whether the store saves and loads where ``fcntl`` does not exist (as on Windows)."""
    code = textwrap.dedent("""
        import sys, tempfile
        sys.modules["fcntl"] = None          # import fcntl now raises ImportError, as on Windows
        from ml_toolbox.persistence import PipelinePersistence
        store = PipelinePersistence(tempfile.mkdtemp())
        store.save({"a": 1}, "x")
        assert store.load("x") == {"a": 1}
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return done.returncode == 0


def test_operating_system_classifiers_are_true():
    """POSIX is declared while the store needs fcntl; Windows or "OS Independent" only once it does not.

    The day the store works without fcntl, this test fails until the classifiers say so.
    """
    declared = {c for c in _classifiers() if c.startswith("Operating System ::")}
    assert "Operating System :: POSIX :: Linux" in declared  # what CI runs on
    if _store_works_without_fcntl():
        pytest.fail("The store now works without fcntl: declare the operating systems it supports "
                    f"(today {sorted(declared)}).")
    assert not {c for c in declared if "Windows" in c or "OS Independent" in c}


def test_package_ships_py_typed():
    package_data = _metadata()["options.package_data"]["ml_toolbox"].split(",")
    assert "py.typed" in [p.strip() for p in package_data]
    assert (ROOT / "ml_toolbox" / "py.typed").is_file()
