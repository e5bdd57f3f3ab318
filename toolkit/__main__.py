"""`python -m toolkit` is the `neurons` command."""

from toolkit.cli import main

main()
