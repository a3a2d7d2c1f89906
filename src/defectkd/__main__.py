"""`python -m defectkd ...`: the CLI where the package is importable but its console script is not installed
(a source checkout on PYTHONPATH, e.g. on a GPU machine that gets the repository copied, not installed)."""

from defectkd.cli import main

if __name__ == "__main__":
    main()
