"""What this machine is, for the header of every benchmark figure: CPU model, count and vector units.

Standard library only, so that it imports and runs without torch or numpy, also as a script::

    python3 src/rnnkit/machine.py
    Intel(R) Xeon(R) Processor, 2 CPUs, AVX2 FMA AVX512F AVX512BW AVX512VL AVX512_BF16 AVX512_FP16, no AMX

Everything comes from ``/proc/cpuinfo``, read once per process (``this_cpu()``), and says exactly
what that file says: a flag the kernel does not list (AMX on a virtual machine that hides it, say)
is not claimed. Each query takes an optional ``info`` (a ``CpuInfo`` from ``parse_cpuinfo`` or
``read_cpuinfo``) so that it can be asked about another machine's ``/proc/cpuinfo`` text.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from typing import NamedTuple, Optional

CPUINFO = "/proc/cpuinfo"

#: The vector features worth naming, in the order they are named. x86 from the "flags" line,
#: Arm from the "Features" line.
X86_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16",
                "amx_tile", "amx_bf16", "amx_int8")
ARM_FEATURES = ("asimd", "sve", "bf16")
#: Flags meaning the CPU multiplies bfloat16 natively (x86 AVX-512 BF16 or AMX, Arm BF16).
NATIVE_BF16 = {"x86": ("avx512_bf16", "amx_bf16"), "arm": ("bf16",)}


class CpuInfo(NamedTuple):
    """What ``/proc/cpuinfo`` says about the first processor it lists.

    ``model``: its "model name" ("" if absent); ``flags``: the words of its "flags" (x86) or
    "Features" (Arm) line; ``arch``: "x86", "arm", or "" when neither line is there;
    ``readable``: False when the file could not be read (then nothing else is known)."""

    model: str = ""
    flags: frozenset = frozenset()
    arch: str = ""
    readable: bool = False


def parse_cpuinfo(text: str) -> CpuInfo:
    """Parse the text of a ``/proc/cpuinfo``: the first "model name" and "flags" / "Features" lines.

    Example: ``parse_cpuinfo("model name : X\\nflags : fpu avx2\\n")`` is
    ``CpuInfo("X", frozenset({"fpu", "avx2"}), "x86", True)``."""
    model, flags, arch = "", None, ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and flags is None:
            flags, arch = frozenset(value.split()), "x86" if key == "flags" else "arm"
    return CpuInfo(model, flags or frozenset(), arch, True)


def read_cpuinfo(path: os.PathLike = CPUINFO) -> CpuInfo:
    """``parse_cpuinfo`` of the file at ``path``; an unreadable file gives ``CpuInfo()`` (readable False)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_cpuinfo(handle.read())
    except OSError:
        return CpuInfo()


@lru_cache(maxsize=1)
def this_cpu() -> CpuInfo:
    """This machine's ``/proc/cpuinfo``, read on the first call and cached for the process."""
    return read_cpuinfo()


def _given(info: Optional[CpuInfo]) -> CpuInfo:
    """``info``, or this machine's when it is None."""
    return this_cpu() if info is None else info


def cpu_model(info: Optional[CpuInfo] = None) -> str:
    """The CPU's "model name"; where ``/proc/cpuinfo`` lacks it, ``platform.processor()`` or
    ``platform.machine()`` (e.g. "x86_64")."""
    info = _given(info)
    return info.model or platform.processor() or platform.machine() or "unknown CPU"


def cpu_count() -> int:
    """The number of logical CPUs (``os.cpu_count()``; 1 if unknown)."""
    return os.cpu_count() or 1


def cpu_flags(info: Optional[CpuInfo] = None) -> frozenset:
    """The words of the "flags" line (x86) or "Features" line (Arm); empty where unreadable."""
    return _given(info).flags


def vector_features(info: Optional[CpuInfo] = None) -> list:
    """The vector features present, in a fixed order: on x86 those of ``X86_FEATURES`` (avx2, fma,
    avx512f, ..., amx_int8), on Arm those of ``ARM_FEATURES`` (asimd, sve, bf16); [] if unknown."""
    info = _given(info)
    names = ARM_FEATURES if info.arch == "arm" else X86_FEATURES if info.arch == "x86" else ()
    return [name for name in names if name in info.flags]


def has_amx(info: Optional[CpuInfo] = None) -> bool:
    """True if the "flags" line names an AMX unit (amx_tile, amx_bf16 or amx_int8)."""
    return any(name.startswith("amx_") for name in vector_features(info))


def has_native_bf16(info: Optional[CpuInfo] = None) -> Optional[bool]:
    """Whether the CPU multiplies bfloat16 natively: avx512_bf16 or amx_bf16 on x86, bf16 on Arm;
    None where ``/proc/cpuinfo`` cannot be read. Without it, bf16 autocast is emulated and slow
    (``python benchmarks/machine_facts.py``: a GEMM 4.4x slower than float32 on an AVX2 machine)."""
    info = _given(info)
    if not info.readable:
        return None
    return any(name in info.flags for name in NATIVE_BF16.get(info.arch, ()))


def describe(info: Optional[CpuInfo] = None) -> str:
    """One line naming the machine: model, CPU count, vector features in upper case, and on x86
    "no AMX" when it has none, e.g. ``AMD EPYC 7B13, 2 CPUs, AVX2 FMA, no AMX``."""
    info = _given(info)
    count = cpu_count()
    parts = [cpu_model(info), f"{count} CPU{'' if count == 1 else 's'}"]
    if not info.readable:
        parts.append(f"CPU features unknown ({CPUINFO} unreadable)")
    else:
        features = vector_features(info)
        parts.append(" ".join(name.upper() for name in features) or "no vector features listed")
        if info.arch == "x86" and not has_amx(info):
            parts.append("no AMX")
    return ", ".join(parts)


def as_dict(info: Optional[CpuInfo] = None) -> dict:
    """The machine for a JSON result: ``cpu`` (model), ``cpus``, ``features`` (list), ``amx`` (bool),
    ``native_bf16`` (bool, or None if unknown)."""
    info = _given(info)
    return {"cpu": cpu_model(info), "cpus": cpu_count(), "features": vector_features(info),
            "amx": has_amx(info), "native_bf16": has_native_bf16(info)}


if __name__ == "__main__":
    print(describe())
