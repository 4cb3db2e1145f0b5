"""``rnnkit export``: a checkpoint's inference model as a ``torch.export`` program (.pt2) or ONNX.

Each task's API module says what its inference model is with ``exportable(trained) ->
Exportable``: a module whose inputs and outputs are tensors, how to make inputs for it from the
checkpoint's own sizes (vocabulary, features), their names and which of their axes are dynamic.
A model a runtime drives in parts (the translator: its encoder and one decoder step) gives
``{part: Exportable}`` instead, and each part goes to its own file, ``NAME.part.EXT`` beside
``output`` (``model.onnx``: ``model.encoder.onnx``, ``model.decoder.onnx``).
``export`` writes each file to a temporary name beside it, runs it (the loaded program, or
onnxruntime for ONNX) on inputs of two shapes the export never saw (one shortest sequence at
batch 1, and a batch of 5 longer ones), compares each output with PyTorch's, and only when every
part passes renames them: a largest difference above ``tolerance`` is an error and leaves no
file behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

FORMATS = ("onnx", "pt2")
TOLERANCE = 1e-4
#: (batch, length) of the inputs the export is traced with, and of those it is checked on
TRACE_SHAPE = (3, 8)



@dataclass
class Exportable:
    """A task's inference model in exportable form.

    Attributes:
        module: eval-mode module; ``module(*inputs)`` returns a tensor or a tuple of tensors.
        make_inputs: ``(batch, length, generator) -> tuple of tensors`` for ``module``.
        input_names: one name per input (the ONNX graph's input names).
        output_names: one name per output.
        dynamic: input name -> ``{axis: "batch" | "length"}``, the axes that take any size.
        min_length: the shortest input the model takes (a convolutional front end needs a few frames).
    """

    module: nn.Module
    make_inputs: Callable[[int, int, torch.Generator], Tuple[Tensor, ...]]
    input_names: List[str]
    output_names: List[str]
    dynamic: Dict[str, Dict[int, str]]
    min_length: int = 1

    def check_shapes(self) -> Tuple[Tuple[int, int], ...]:
        """(batch, length) of the checks: a single shortest input (a language model's generation
        step is one token of one sequence) and a batch of longer ones."""
        return (1, self.min_length), (5, 13)


def padded_lengths(batch: int, length: int, generator: torch.Generator) -> Tuple[Tensor, Tensor]:
    """Random lengths for a check's padded batch, as ``make_inputs`` draws them: ``lengths`` (batch,)
    from 1 to ``length``, the first one full, and ``real`` (batch, length), True at real steps."""
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length
    return lengths, torch.arange(length) < lengths.unsqueeze(1)


@dataclass
class ExportReport:
    """What ``export`` wrote: ``paths`` (one file, or one per part), ``format``, the largest
    difference from PyTorch over the checks of every part, and the (batch, length) shapes checked."""

    paths: List[Path]
    format: str
    max_difference: float
    checked: Sequence[Tuple[int, int]]


def part_paths(output: Path, parts) -> Dict[str, Path]:
    """Where each part goes: ``output`` itself for a single model (part ""), else ``NAME.part.EXT``."""
    return {part: output if not part else output.with_name(f"{output.stem}.{part}{output.suffix}") for part in parts}


def export(checkpoint, output, fmt: str, *, tolerance: float = TOLERANCE, force: bool = False) -> ExportReport:
    """Export the inference model of ``checkpoint`` to ``output`` as ``fmt`` ("onnx" or "pt2").

    Raises:
        ValueError: an unknown format, a tolerance not above 0, an existing ``output`` without
            ``force``, a task without an exportable model, an option ONNX cannot express, or a
            written file whose results differ from PyTorch's by more than ``tolerance`` (the file
            is then removed and ``output`` left as it was).
    """
    from rnnkit.tasks import load, spec_of

    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not tolerance > 0:
        raise ValueError(f"--tolerance must be above 0, got {tolerance}")
    output = Path(output)
    if output.is_dir():
        raise ValueError(f"--output {output} is a directory; give a file name such as model.{fmt}")
    spec = spec_of(checkpoint, verb="rnnkit export")
    api = spec.module()
    if not hasattr(api, "exportable"):
        raise ValueError(f"rnnkit export does not support {spec.name!r} checkpoints yet (it exports lm, classify, "
                         f"forecast, speech and translate models)")
    made = api.exportable(load(checkpoint))
    parts = made if isinstance(made, dict) else {"": made}
    paths = part_paths(output, parts)
    existing = [str(path) for path in paths.values() if path.is_file()]
    if existing and not force:
        raise ValueError(f"--output {', '.join(existing)} {'exists' if len(existing) == 1 else 'exist'}; pass --force "
                         f"to replace {'it' if len(existing) == 1 else 'them'}")
    output.parent.mkdir(parents=True, exist_ok=True)
    partials = {part: path.with_name(f".{path.name}.partial") for part, path in paths.items()}
    try:
        difference = 0.0
        with torch.no_grad():
            for part, exportable in parts.items():
                write(exportable, partials[part], fmt)
                difference = max(difference, check(exportable, partials[part], fmt))
        if not difference <= tolerance:
            raise ValueError(f"the exported {fmt} model differs from PyTorch by {difference:.3g} (more than "
                             f"{tolerance:g}): nothing was written to {', '.join(map(str, paths.values()))}")
        for part, path in paths.items():
            os.replace(partials[part], path)
    finally:
        for partial in partials.values():
            for leftover in (partial, partial.with_name(partial.name + ".data")):
                if leftover.exists():
                    leftover.unlink()
    shapes = sorted({shape for exportable in parts.values() for shape in exportable.check_shapes()})
    return ExportReport(list(paths.values()), fmt, difference, shapes)


def dynamic_shapes(exportable: Exportable) -> dict:
    """``torch.export`` dynamic shapes of ``exportable``'s inputs: batch 1-4096, length
    ``min_length``-4096 (traced at ``TRACE_SHAPE``, so that neither is specialised to it)."""
    dims = {"batch": torch.export.Dim("batch", min=1, max=4096),
            "length": torch.export.Dim("length", min=exportable.min_length, max=4096)}
    return {name: {axis: dims[kind] for axis, kind in exportable.dynamic.get(name, {}).items()} or None
            for name in exportable.input_names}


def write(exportable: Exportable, path: Path, fmt: str) -> None:
    """Trace ``exportable`` at ``TRACE_SHAPE`` and write it to ``path`` as ``fmt``."""
    inputs = exportable.make_inputs(*TRACE_SHAPE, torch.Generator().manual_seed(0))
    shapes = _by_position(exportable, dynamic_shapes(exportable))
    if fmt == "pt2":
        program = torch.export.export(_Positional(exportable.module), inputs, dynamic_shapes=shapes)
        torch.export.save(program, str(path))
        return
    from rnnkit.nn import onnx_translations

    try:
        torch.onnx.export(_Positional(exportable.module), inputs, str(path), dynamo=True, dynamic_shapes=shapes,
                          input_names=exportable.input_names, output_names=exportable.output_names,
                          custom_translation_table=onnx_translations(), external_data=False, verbose=False)
    except Exception as error:       # the exporter wraps the reason (ours among them) in pages of report
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ValueError(f"ONNX export failed: {reason}") from error


def check(exportable: Exportable, path: Path, fmt: str) -> float:
    """The largest absolute difference between the file at ``path`` and PyTorch, over every output
    at each of ``exportable.check_shapes()`` (inf when a shape differs or a value is not finite
    where PyTorch's is)."""
    run = runner(path, fmt)
    worst = 0.0
    for k, (batch, length) in enumerate(exportable.check_shapes()):
        inputs = exportable.make_inputs(batch, length, torch.Generator().manual_seed(k + 1))
        want = _as_tuple(exportable.module(*inputs))
        got = run(inputs)
        if len(got) != len(want):
            return float("inf")
        for a, b in zip(want, got):
            b = torch.as_tensor(b)
            if a.shape != b.shape:
                return float("inf")
            if a.numel():
                diff = (a.double() - b.double()).abs().nan_to_num(nan=float("inf")).max().item()
                worst = max(worst, diff)
    return worst


def runner(path: Path, fmt: str) -> Callable:
    """The exported file at ``path`` as a function: a tuple of input tensors -> a tuple of output
    tensors (the loaded program for pt2, an onnxruntime session for ONNX)."""
    if fmt == "pt2":
        program = torch.export.load(str(path)).module()
        return lambda inputs: _as_tuple(program(*inputs))
    try:
        import onnxruntime
    except ImportError:
        raise ValueError("checking an ONNX export needs onnxruntime: pip install rnnkit[export]") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda inputs: tuple(torch.from_numpy(o) for o in session.run(
        None, {name: t.numpy() for name, t in zip(names, inputs)}))


class _Positional(nn.Module):
    # The module with positional tensor inputs only, as both exporters take them.
    def __init__(self, module: nn.Module):
        super().__init__()
        self.inner = module
        self.training = module.training         # (the flag only: an evaluation-mode model exports without a warning)

    def forward(self, *inputs):
        return self.inner(*inputs)


def _by_position(exportable: Exportable, shapes: dict) -> tuple:
    # _Positional takes *inputs: its dynamic shapes are one tuple, in input order
    return (tuple(shapes[name] for name in exportable.input_names),)


def _as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)
