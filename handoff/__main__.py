"""`python -m handoff` runs the command line."""

from handoff.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
