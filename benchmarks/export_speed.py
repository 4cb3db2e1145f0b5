"""What each route costs for inference: one model run eagerly with rnnkit, compiled with
``torch.compile``, and exported to ONNX and run by onnxruntime, beside ``torch.nn``'s LSTM.

    python benchmarks/export_speed.py [--T 50] [--I 128] [--H 256] [--layers 2] [--repeats 30] [--json FILE]

The model is a classifier's shape: an ``--layers`` bidirectional LSTM over (B, T, I) input and a
linear head on the last step. Each route runs at batch 1 and batch 64, the routes alternating
within each repeat, and the median milliseconds per call are reported with the ratio to eager
rnnkit (below 1: faster). The outputs of every route are compared with eager rnnkit's first.
Needs the export extra (``pip install rnnkit[export]``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import print_machine, run, write_result

import rnnkit.nn as rnn


class Classifier(torch.nn.Module):
    def __init__(self, layer_cls, I: int, H: int, layers: int):
        super().__init__()
        self.rnn = layer_cls(I, H, num_layers=layers, bidirectional=True, batch_first=True)
        self.head = torch.nn.Linear(2 * H, 4)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=50, help="steps (default: 50)")
    parser.add_argument("--I", type=int, default=128, help="input features (default: 128)")
    parser.add_argument("--H", type=int, default=256, help="hidden size per direction (default: 256)")
    parser.add_argument("--layers", type=int, default=2, help="(default: 2)")
    parser.add_argument("--batches", default="1,64", help="batch sizes (default: 1,64)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per route and batch (default: 30)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    import onnxruntime

    print_machine()
    torch.manual_seed(0)
    ours = Classifier(rnn.LSTM, args.I, args.H, args.layers).eval()
    reference = Classifier(torch.nn.LSTM, args.I, args.H, args.layers).eval()
    reference.load_state_dict(ours.state_dict())
    example = torch.randn(3, args.T, args.I)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(ours, (example,), str(path), dynamo=True, dynamic_shapes={"x": {0: batch}},
                          custom_translation_table=rnn.onnx_translations(), verbose=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        compiled = torch.compile(ours, dynamic=True)
        routes = {
            "rnnkit eager": ours,
            "torch.compile(rnnkit)": compiled,
            "onnxruntime": lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0]),
            "torch.nn.LSTM eager": reference,
        }
        results = {}
        for B in (int(b) for b in args.batches.split(",")):
            x = torch.randn(B, args.T, args.I)
            want = ours(x)
            differences = {route: float((f(x) - want).abs().max()) for route, f in routes.items()}   # warm-up too
            times = {route: [] for route in routes}
            for _ in range(args.repeats):
                for route, f in routes.items():
                    started = time.perf_counter()
                    f(x)
                    times[route].append(time.perf_counter() - started)
            base = statistics.median(times["rnnkit eager"])
            results[f"batch {B}"] = {route: {"ms": round(1000 * statistics.median(t), 3),
                                             "ratio_to_rnnkit_eager": round(statistics.median(t) / base, 3),
                                             "max_difference": differences[route]}
                                     for route, t in times.items()}
            print(f"batch {B}: " + ", ".join(f"{route} {v['ms']:.2f} ms" for route, v in
                                             results[f'batch {B}'].items()), flush=True)
    write_result(args.json, {"benchmark": "export_speed", "T": args.T, "I": args.I, "H": args.H,
                             "layers": args.layers, "bidirectional": True, "threads": torch.get_num_threads(),
                             "repeats": args.repeats, "results": results})


if __name__ == "__main__":
    run(main)
