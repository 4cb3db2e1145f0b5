"""Settings declared once as dataclass fields: they check themselves and make the command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import List, Optional

import pytest

from rnnkit.options import ConfigError, Shown, add_flags, check, flag_of, flags, given, option


@dataclass
class Example:
    size: int = option(help="cells per layer", min=1, cli=False)
    layers: int = option(2, flag="--depth", help="layers", min=1)
    rate: float = option(0.5, help="a rate", min=0, below=1)
    name: str = option("lstm", help="the cell", choices=("lstm", "gru"))
    limit: Optional[float] = option(None, help="a limit", above=0, default_text="none at all")
    cutoffs: Optional[List[int]] = option(None, help="cutoffs")
    shout: bool = option(False, help="louder")
    lowercase: bool = option(True, help="keep the case")
    header: Optional[bool] = option(None, flag="--no-header", const=False, help="no header row")

    def __post_init__(self):
        check(self)


def parser(**defaults):
    p = argparse.ArgumentParser(prog="x", exit_on_error=False)
    add_flags(p, Example, defaults=defaults)
    return p


@pytest.mark.parametrize("field, value, message", [
    ("size", 0, "size must be a finite int >= 1, got 0"), ("rate", 1.0, "rate must be a finite float >= 0 and < 1"),
    ("rate", float("nan"), "rate must be"), ("name", "rnn", "name must be one of 'lstm', 'gru', got 'rnn'"),
    ("limit", 0.0, "limit must be a finite float > 0 or None"), ("cutoffs", [1, "a"], "cutoffs must be a list"),
    ("shout", "yes", "shout must be True or False"), ("layers", True, "layers must be a finite int"),
])
def test_a_bad_value_is_a_config_error_naming_its_field(field, value, message):
    with pytest.raises(ConfigError, match=message) as error:
        Example(**{"size": 3, field: value})
    assert error.value.field == field


def test_every_field_with_a_flag_gets_one_with_its_help_and_default():
    text = parser().format_help()
    assert flags(Example) == {"layers": "--depth", "rate": "--rate", "name": "--name", "limit": "--limit",
                              "cutoffs": "--cutoffs", "shout": "--shout", "lowercase": "--no-lowercase",
                              "header": "--no-header"}
    assert "--size" not in text and "layers (default: 2)" in text and "(default: none at all)" in text
    assert "louder (default: off)" in text and "keep the case (default: off)" in text
    shown = parser(layers=4, rate=Shown("a tenth of the steps")).format_help()
    assert "layers (default: 4)" in shown and "(default: a tenth of the steps)" in shown


def test_only_the_flags_given_are_read_back_parsed():
    args = parser().parse_args(["--depth", "3", "--cutoffs", "10,20", "--no-lowercase", "--no-header", "--shout"])
    assert given(args, Example) == {"layers": 3, "cutoffs": [10, 20], "lowercase": False, "header": False,
                                    "shout": True}
    assert given(parser().parse_args([]), Example) == {}
    assert Example(size=1, **given(args, Example)).layers == 3


def test_counts_and_types_are_checked_while_parsing_other_ranges_when_the_config_is_built():
    for argv in (["--depth", "0"], ["--depth", "two"], ["--rate", "nan"], ["--name", "rnn"], ["--cutoffs", "1,x"]):
        with pytest.raises(argparse.ArgumentError):
            parser().parse_args(argv)
    values = given(parser().parse_args(["--rate", "1.5"]), Example)            # parsed: a float
    with pytest.raises(ConfigError, match="rate must be"):
        Example(size=1, **values)


def test_a_flag_two_classes_share_is_added_once_and_a_clash_is_refused():
    @dataclass
    class Other:
        layers: int = option(2, flag="--depth", help="layers", min=1)

    @dataclass
    class Clash:
        layers: int = option(2, flag="--depth", help="something else")

    p = parser()
    add_flags(p, Other)
    assert given(p.parse_args(["--depth", "5"]), Other) == {"layers": 5} == \
        {k: v for k, v in given(p.parse_args(["--depth", "5"]), Example).items()}
    with pytest.raises(ValueError, match="declared twice"):
        add_flags(p, Clash)
    assert flag_of(Clash, "layers") == "--depth"
