"""Fused gate arithmetic in C++ (``cells.cpp``), compiled for this machine on first use.

``load()`` returns the compiled module, or None when it cannot be had: no C++ compiler, no
``ninja``, a failed build, or ``RNNKIT_NATIVE=0`` in the environment. Then the cells run as
PyTorch operations (``rnnkit.nn.cells``): the same equations, slower per step, with a one-time
warning saying why. The build takes about a minute once; PyTorch caches it
(``TORCH_EXTENSIONS_DIR``, by default under ``~/.cache/torch_extensions``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shutil
import sys
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Optional

SOURCE = Path(__file__).with_name("cells.cpp")


def enabled() -> bool:
    """False when ``RNNKIT_NATIVE`` is set to 0/false/no/off."""
    return os.environ.get("RNNKIT_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def _build(flags: list) -> object:
    from torch.utils.cpp_extension import get_default_build_root
    from torch.utils.cpp_extension import load as build
    # The source's path is in the name too: torch's build records it, and two checkouts sharing one
    # name rebuilt each other's extension (and waited on each other's lock) at every switch.
    tag = hashlib.sha1((SOURCE.read_text() + " ".join(flags) + str(SOURCE.resolve())).encode()).hexdigest()[:10]
    name = f"rnnkit_cells_{tag}"
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    # torch builds in root/NAME, or in root/py311_cpu/NAME when TORCH_EXTENSIONS_DIR is unset
    if not any(root.glob(f"{name}/{name}.so")) and not any(root.glob(f"*/{name}/{name}.so")):
        print("rnnkit: compiling the fused C++ cells for this machine (about a minute, once)...",
              file=sys.stderr, flush=True)
    return build(name=name, sources=[str(SOURCE)], extra_cflags=flags, extra_ldflags=["-fopenmp"], verbose=False)


def _cpu_flags() -> list:
    # Vectorise for this CPU when it has AVX2+FMA; the build is cached per flag set.
    from rnnkit.machine import cpu_flags

    have = cpu_flags()
    if platform.machine() not in ("x86_64", "AMD64") or not {"avx2", "fma"} <= have:
        return []
    if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= have:
        # 512-bit vectors for the gate loops (GCC otherwise keeps to 256 bits on AVX-512 parts)
        flags = ["-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl",
                 "-mprefer-vector-width=512"]
        # bfloat16 dot products in one instruction (VDPBF16PS), for the streaming step of bf16 layers
        return flags + (["-mavx512bf16"] if "avx512_bf16" in have else [])
    return ["-mavx2", "-mfma"]


@lru_cache(maxsize=1)
def load() -> Optional[object]:
    """The compiled extension, or None (see the module docstring)."""
    if not enabled():
        return None
    reason = None
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        reason = "no C++ compiler on PATH"
    else:
        if importlib.util.find_spec("ninja") is None:                 # torch's builder runs it
            reason = "the ninja package is not installed"
    if reason is None:
        # With this CPU's vector flags first; a compiler too old for one of them gets a portable build.
        base, cpu = ["-O3", "-ffast-math", "-fopenmp"], _cpu_flags()
        for flags in ([base + cpu] if cpu else []) + [base]:
            try:
                return _build(flags)
            except Exception as error:  # a failed build of an optional speed-up must not stop the user
                reason = f"the build failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    warnings.warn(f"rnnkit: fused C++ cells unavailable, {reason}; using the PyTorch cells "
                  f"(same results, slower). Set RNNKIT_NATIVE=0 to silence this.", RuntimeWarning, stacklevel=3)
    return None


def set_flush_denormal(on: bool) -> bool:
    """Denormal floats flushed to zero (``on``) or computed (PyTorch's default), on this thread and
    on every intra-op thread of the current ``torch.get_num_threads()`` (set it again after changing
    that). Without the extension, ``torch.set_flush_denormal``: this thread only, so that with
    several threads the others still compute on denormals. Returns whether this CPU can flush them
    (x86 with SSE3)."""
    import torch

    module = load()
    return bool(module.set_flush_denormal(on)) if module is not None else torch.set_flush_denormal(on)
