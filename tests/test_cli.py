"""The command line: help, errors (one line, right exit code, no traceback), JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnkit import cli

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m rnnkit ARGS`` in a subprocess, importing this checkout's rnnkit."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("RNNKIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *args],
        capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rnnkit: error: ")
    return lines[0]


def test_help_lists_commands():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout
    assert "bench" in proc.stdout


def test_bench_layers_help_lists_flags_with_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "layers", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--quick", "--json", "--repeats", "--threads"):
        assert flag in out
    assert out.count("default") >= 4


def test_every_flag_has_help_and_default():
    parser = cli.build_parser()

    def walk(p):
        for action in p._actions:
            if action.dest in ("help", "version"):
                continue
            if action.choices and isinstance(action.choices, dict):  # subcommands
                for sub in action.choices.values():
                    yield from walk(sub)
            elif action.option_strings:
                yield p.prog, action

    actions = list(walk(parser))
    assert actions
    for prog, action in actions:
        assert action.help, (prog, action.option_strings)
        assert action.required or "default" in action.help, (prog, action.option_strings)


def test_json_to_missing_directory_fails_before_running(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "bench.json"
    proc = run_cli("bench", "layers", "--quick", "--json", str(target))
    line = assert_one_line_error(proc, 2)
    assert "does not exist" in line
    assert proc.stdout == ""  # nothing ran: no table header was printed
    assert not target.parent.exists()


def test_json_to_a_directory_fails(tmp_path, capsys):
    assert cli.main(["bench", "layers", "--json", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("rnnkit: error: ") and captured.err.count("\n") == 1
    assert "is a directory" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize(
    "args",
    [
        ("bench", "layers", "--repeats", "0"),
        ("bench", "layers", "--threads", "many"),
        ("bench", "layers", "--unknown-flag"),
        ("demo", "--steps", "-1"),
        ("no-such-command",),
        ("bench",),
        (),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, capsys):
    # In-process (a subprocess costs seconds of torch import each): argparse exits with 2.
    with pytest.raises(SystemExit) as exit_info:
        code = cli.main(list(args))
        raise SystemExit(code)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnkit: error: "), captured.err
    assert captured.out == ""


def test_runtime_errors_are_one_line_exit_1(monkeypatch, capsys):
    def boom(args):
        raise FileNotFoundError(2, "No such file or directory", "missing.txt")

    monkeypatch.setattr(cli, "_cmd_demo", boom)
    monkeypatch.delenv("RNNKIT_DEBUG", raising=False)
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("rnnkit: error: ") and "missing.txt" in err


def test_write_json_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    cli.write_json_atomic(str(path), [{"a": 1}])
    assert json.loads(path.read_text()) == [{"a": 1}]
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_json_atomic_leaves_old_file_on_error(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        cli.write_json_atomic(str(path), [object()])  # not JSON-serialisable, fails mid-write
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]  # no temporary file left behind


def test_bench_layers_writes_json(tmp_path, monkeypatch, capsys):
    """The whole command in-process, on a tiny plan."""
    from rnnkit.bench import layers

    tiny = (layers.Shape(T=3, B=2, I=4, H=5),)
    monkeypatch.setattr(layers, "bench_plan", lambda quick=False: (tiny, layers.Shape(1, 1, 4, 5), 1))
    monkeypatch.setattr(layers, "MIN_RUN_TIME", 0.0)
    path = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        argv = ["bench", "layers", "--quick", "--warmup", "0", "--threads", "1", "--json", str(path)]
        assert cli.main(argv) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    rows = json.loads(path.read_text())
    assert len(rows) == 3 * 2 + 3
    assert all(tuple(row) == layers.KEYS for row in rows)
    out = capsys.readouterr().out
    assert "| rnn_tanh" in out and "ratio" in out
    assert sorted(os.listdir(tmp_path)) == ["bench.json"]


def _fake_hello(prediction: str):
    """A stand-in for rnnkit.examples.hello (the real one trains; this is instant)."""
    import types

    from rnnkit.examples.hello import HelloResult

    module = types.ModuleType("rnnkit.examples.hello")
    module.run = lambda cell="lstm", steps=100, seed=0, verbose=True: HelloResult(cell, prediction, steps, 0.01)
    return module


@pytest.mark.parametrize("prediction, code", [("ello", 0), ("elll", 1)])
def test_demo_reports_each_cell_and_fails_on_a_wrong_prediction(monkeypatch, capsys, prediction, code):
    import rnnkit

    fake = _fake_hello(prediction)
    try:
        import rnnkit.examples as examples
    except ImportError:  # examples not written yet: fake the package too
        import types

        examples = types.ModuleType("rnnkit.examples")
        monkeypatch.setitem(sys.modules, "rnnkit.examples", examples)
        monkeypatch.setattr(rnnkit, "examples", examples, raising=False)
    monkeypatch.setitem(sys.modules, "rnnkit.examples.hello", fake)
    monkeypatch.setattr(examples, "hello", fake, raising=False)

    assert cli.main(["demo", "--steps", "7", "--lm-seconds", "0"]) == code
    captured = capsys.readouterr()
    for cell in ("rnn", "lstm", "gru"):
        assert f"{cell} " in captured.out
    assert "after    7 steps" in captured.out
    assert "max |difference|" in captured.out  # the streaming section ran
    if code:
        assert captured.err.count("rnnkit: error: ") == 3
        assert "Traceback" not in captured.err
    else:
        assert captured.err == ""


def test_demo_language_model_learns_and_samples_in_a_few_seconds():
    import io
    import re

    from rnnkit.demo import language_model_section

    out = io.StringIO()
    language_model_section(out, seed=0, lm_seconds=6, lm_threads=1)
    text = out.getvalue()
    loss = float(re.search(r"validation loss ([0-9.]+) nats/char", text).group(1))
    assert loss < 3.6                                  # a uniform guess over ~100 characters: 4.6
    for temperature in ("0.5", "0.8", "1.0"):
        assert f"temperature {temperature}:" in text
