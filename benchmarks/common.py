"""What the scripts in benchmarks/ share: the layer-shape command line."""

from __future__ import annotations

import argparse


def shape_parser(description: str, repeats: int) -> argparse.ArgumentParser:
    """A parser for ``--T --B --I --H`` (the first shape of ``rnnkit bench layers``) and ``--repeats``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--T", type=int, default=100, help="time steps (default: %(default)s)")
    parser.add_argument("--B", type=int, default=64, help="batch size (default: %(default)s)")
    parser.add_argument("--I", type=int, default=256, help="input size (default: %(default)s)")
    parser.add_argument("--H", type=int, default=512, help="hidden size (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help="timed runs of each, alternating (default: %(default)s)")
    return parser
