"""rnnkit.machine: what /proc/cpuinfo says, on fake texts of the machines this project has run on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit import machine

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "src" / "rnnkit" / "machine.py"

_X86_BASE = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 "
             "ht syscall nx lm constant_tsc rep_good nopl pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt "
             "aes xsave avx f16c rdrand hypervisor lahf_lm abm bmi1 avx2 smep bmi2 erms")


def _x86(model: str, extra: str, processors: int = 2) -> str:
    """A /proc/cpuinfo text of ``processors`` identical x86 processors."""
    return "\n".join(f"processor\t: {k}\nvendor_id\t: X\nmodel name\t: {model}\nflags\t\t: {_X86_BASE} {extra}\n"
                     f"bugs\t\t: spectre_v1\n" for k in range(processors))


EPYC = _x86("AMD EPYC 7B13", "sha_ni clzero xsaveopt xsavec vaes vpclmulqdq rdpid")
AMX_XEON = _x86("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
                "avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vnni "
                "tsxldtrk amx_bf16 avx512_fp16 amx_tile amx_int8 arch_capabilities")
ARM = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc \
dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 \
i8mm bf16 dgh rng
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd40

processor\t: 1
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve bf16
"""
ARM_WITHOUT_BF16 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics cpuid\n"


@pytest.fixture(autouse=True)
def two_cpus(monkeypatch):
    """describe() names os.cpu_count(); fix it so that the expected lines are exact."""
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)


def test_avx2_only_epyc():
    info = machine.parse_cpuinfo(EPYC)
    assert machine.cpu_model(info) == "AMD EPYC 7B13"
    assert machine.vector_features(info) == ["avx2", "fma"]
    assert machine.has_native_bf16(info) is False
    assert machine.describe(info) == "AMD EPYC 7B13, 2 CPUs, AVX2 FMA, no AMX"
    assert machine.as_dict(info) == {"cpu": "AMD EPYC 7B13", "cpus": 2, "features": ["avx2", "fma"],
                                     "amx": False, "native_bf16": False}


def test_amx_xeon_names_features_in_the_fixed_order():
    info = machine.parse_cpuinfo(AMX_XEON)
    assert machine.vector_features(info) == ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
                                             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"]
    assert machine.has_native_bf16(info) is True
    assert machine.describe(info) == ("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz, 2 CPUs, AVX2 FMA AVX512F "
                                      "AVX512BW AVX512VL AVX512_BF16 AVX512_FP16 AMX_TILE AMX_BF16 AMX_INT8")
    assert machine.as_dict(info)["amx"] is True
    assert "amx_tile" in machine.cpu_flags(info) and "fpu" in machine.cpu_flags(info)


def test_xeon_with_avx512_bf16_and_no_amx_says_no_amx():
    info = machine.parse_cpuinfo(_x86("Intel(R) Xeon(R) Processor", "avx512f avx512bw avx512vl avx512_bf16", 1))
    assert machine.has_native_bf16(info) is True
    assert machine.describe(info).endswith(", 2 CPUs, AVX2 FMA AVX512F AVX512BW AVX512VL AVX512_BF16, no AMX")


def test_arm_reads_the_features_line_and_falls_back_for_the_model(monkeypatch):
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "aarch64")
    info = machine.parse_cpuinfo(ARM)
    assert machine.vector_features(info) == ["asimd", "sve", "bf16"]
    assert machine.has_native_bf16(info) is True
    assert machine.describe(info) == "aarch64, 2 CPUs, ASIMD SVE BF16"        # no "no AMX" off x86
    assert machine.as_dict(info)["amx"] is False
    plain = machine.parse_cpuinfo(ARM_WITHOUT_BF16)
    assert machine.vector_features(plain) == ["asimd"] and machine.has_native_bf16(plain) is False


def test_an_unreadable_cpuinfo_claims_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")
    info = machine.read_cpuinfo(tmp_path / "missing")
    assert machine.cpu_flags(info) == frozenset() and machine.vector_features(info) == []
    assert machine.has_native_bf16(info) is None
    assert machine.cpu_model(info) == "x86_64"
    assert machine.describe(info).startswith("x86_64, 2 CPUs, CPU features unknown")
    json.dumps(machine.as_dict(info))


def test_read_cpuinfo_parses_a_file(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(EPYC)
    assert machine.read_cpuinfo(path) == machine.parse_cpuinfo(EPYC)
    assert machine.read_cpuinfo(path).readable


def test_cpuinfo_is_read_once(monkeypatch):
    reads = []
    monkeypatch.setattr(machine, "read_cpuinfo", lambda: reads.append(1) or machine.parse_cpuinfo(AMX_XEON))
    machine.this_cpu.cache_clear()
    try:
        machine.cpu_model(), machine.cpu_flags(), machine.describe(), machine.as_dict(), machine.has_native_bf16()
        assert machine.vector_features()[-1] == "amx_int8"
        assert reads == [1]
    finally:
        machine.this_cpu.cache_clear()


def test_this_machine_is_what_proc_cpuinfo_says():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    first = next((line for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features")), "")
    assert machine.cpu_flags() == frozenset(first.partition(":")[2].split())
    assert machine.has_native_bf16() == any(f in machine.cpu_flags() for f in ("avx512_bf16", "amx_bf16", "bf16"))


def test_the_script_prints_one_line_without_torch_or_numpy():
    # torch and numpy made unimportable: the module must need neither.
    code = ("import runpy, sys; sys.modules['torch'] = None; sys.modules['numpy'] = None; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    for command in ([sys.executable, "-I", "-c", code], [sys.executable, "-I", str(SCRIPT)]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == 1 and " CPU" in lines[0], done.stdout


def test_native_compiler_flags_come_from_the_cpu_flags(monkeypatch):
    from rnnkit.nn import native

    monkeypatch.setattr(native.platform, "machine", lambda: "x86_64")
    for text, expected in ((EPYC, ["-mavx2", "-mfma"]),
                           (AMX_XEON, ["-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl",
                                       "-mprefer-vector-width=512", "-mavx512bf16"]),
                           (_x86("old", "", 1).replace(" avx2", ""), [])):
        monkeypatch.setattr(machine, "cpu_flags", lambda: machine.parse_cpuinfo(text).flags)
        assert native._cpu_flags() == expected


def test_benchmark_header_and_json_name_the_machine(tmp_path, monkeypatch, capsys):
    from rnnkit.bench import layers
    from rnnkit.nn import native

    monkeypatch.setattr(native, "load", lambda: None)          # no build: the summary says "cells off"
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import common

    common.print_machine()
    assert capsys.readouterr().out == f"# machine: {layers.environment_summary()}\n"
    assert layers.environment_summary().startswith(machine.describe() + "; torch ")
    common.write_result(tmp_path / "result.json", {"benchmark": "test"})
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "result.json").read_text())
    assert printed == written and written["benchmark"] == "test"
    assert written["environment"] == layers.environment()
    assert set(written["environment"]) == {"cpu", "cpus", "features", "amx", "native_bf16", "torch", "threads",
                                           "capability", "python", "loop"}
    assert written["environment"]["loop"] == "fused C++ cells off"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]             # no temporary file left
