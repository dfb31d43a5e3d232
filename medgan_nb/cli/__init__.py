"""The command line, ``python -m medgan_nb``: one module per command, the parser in `main`."""
from .app import build_parser, main
