"""`python -m turnwise`: the `turnwise` command, for when its script is not on PATH."""

from turnwise.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
