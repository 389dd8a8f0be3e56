"""pytest collects the Markdown pages of docs/ as doctests; api.md is generated from docstrings
that already run as doctests in their modules (tests/test_apidoc.py checks it is up to date)."""

collect_ignore = ["api.md"]
