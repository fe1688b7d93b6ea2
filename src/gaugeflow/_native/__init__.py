"""The optional native kernels (``kernels.c``): built with the system C compiler at first use, loaded with ctypes.

Why: sums of ``so(k)`` brackets over a batch (the crossed-module gauge term of
:class:`~gaugeflow.models.HigherGaugeFlow` and its gradients) are, in PyTorch, index gathers,
sign products, batched products of tiny ``k×k`` matrices and scatter-adds: a dozen memory-bound
passes per step. ``kernels.c`` does the whole sum for 8 samples at a time in vector registers
(:func:`gaugeflow.algebra.bracket_sums`), and the outer product ``d ⊗ z`` of a folded output
layer and its gradient in one pass each (``MLP.contracted``).

How: no build step at install time and no PyTorch headers. The first call compiles one C file
(``cc -O3 -march=native -fopenmp -shared``, about three seconds) into a per-user cache
(``$GAUGEFLOW_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/gaugeflow`` or ``~/.cache/gaugeflow``),
keyed by the source, the compiler and the CPU; the file is written under a temporary name and
renamed, so concurrent processes (pytest-xdist workers) never load a partial library.

Without a compiler (or with ``GAUGEFLOW_NATIVE=0``) :func:`library` returns ``None``,
:func:`status` says why, and callers use their PyTorch path — the same values, slower.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import torch

__all__ = ["library", "status", "for_tensors", "threads", "SOURCE", "MAX_K", "DTYPES"]

SOURCE = Path(__file__).with_name("kernels.c")
MAX_K = 32  #: largest so(k) the bracket kernel takes (``MAXK`` in kernels.c)
DTYPES = (torch.float32, torch.float64)  #: the dtypes the kernels are compiled for
_ABI = 4
_FLAGS = ["-O3", "-march=native", "-std=gnu11", "-shared", "-fPIC"]
_state: dict = {}


def _cache_dir() -> Path:
    root = os.environ.get("GAUGEFLOW_NATIVE_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "gaugeflow"


def _cpu_tag() -> str:
    """What ``-march=native`` depends on: the CPU's model and flags (Linux), else the platform."""
    try:
        with open("/proc/cpuinfo") as fh:
            lines = [ln for ln in fh if ln.startswith(("model name", "flags"))][:2]
        return "".join(lines) or platform.processor()
    except OSError:
        return platform.machine() + platform.processor()


def _compile(cc: str, out: Path) -> tuple[bool, str]:
    """Compile ``SOURCE`` to ``out`` (atomically); OpenMP if the compiler has it. ``(ok, message)``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    last = ""
    for extra in (["-fopenmp"], []):
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        try:
            proc = subprocess.run([cc, *_FLAGS, *extra, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=120)
            if proc.returncode == 0:
                os.replace(tmp, out)
                return True, ""
            last = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            last = last[0]
        except (OSError, subprocess.SubprocessError) as err:
            last = str(err)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return False, last


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64, i = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for fn in (lib.gf_so_brackets_f32, lib.gf_so_brackets_f64):
        fn.argtypes = [i64, i, p, i64, i, p, i64, i, p, i, i, p, p, p, p, i]
        fn.restype = i
    for fn in (lib.gf_outer_f32_forward, lib.gf_outer_f64_forward):
        fn.argtypes = [i64, i, i, p, i64, p, i64, p, i64, i]
        fn.restype = i
    for fn in (lib.gf_outer_f32_backward, lib.gf_outer_f64_backward):
        fn.argtypes = [i64, i, i, p, i64, p, i64, p, i64, p, p, i]
        fn.restype = i
    lib.gf_abi_version.restype = i
    return lib


def _load() -> tuple[Optional[ctypes.CDLL], str]:
    if os.environ.get("GAUGEFLOW_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None, "disabled by GAUGEFLOW_NATIVE=0"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None, "no C compiler found (set CC, or install gcc); using the PyTorch kernels"
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        return None, f"C compiler {cc!r} does not run ({err}); using the PyTorch kernels"
    key = hashlib.sha256(b"\0".join(s.encode() for s in (SOURCE.read_text(), " ".join(_FLAGS), version, _cpu_tag()))).hexdigest()[:20]
    errors = []
    for folder in (_cache_dir(), Path(tempfile.gettempdir()) / f"gaugeflow-{os.getuid() if hasattr(os, 'getuid') else 'user'}"):
        path = folder / f"kernels-{key}.so"
        if not path.exists():
            try:
                ok, msg = _compile(cc, path)
            except OSError as err:  # cache folder not writable
                ok, msg = False, str(err)
            if not ok:
                errors.append(f"{folder}: {msg}")
                continue
        try:
            lib = _bind(ctypes.CDLL(str(path)))
        except OSError as err:
            errors.append(f"{path}: {err}")
            continue
        if lib.gf_abi_version() != _ABI:
            errors.append(f"{path}: ABI {lib.gf_abi_version()} != {_ABI}")
            continue
        return lib, f"loaded {path}"
    return None, "native kernel unavailable (" + "; ".join(errors) + "); using the PyTorch kernels"


def library() -> Optional[ctypes.CDLL]:
    """The loaded native library, or ``None`` (built and loaded once per process)."""
    if "lib" not in _state:
        _state["lib"], _state["status"] = _load()
    return _state["lib"]


def status() -> str:
    """One line: where the native kernel was loaded from, or why it is not used."""
    library()
    return _state["status"]


def for_tensors(*tensors: torch.Tensor) -> Optional[ctypes.CDLL]:
    """The library, if it may read these tensors' memory: plain CPU float32/float64 tensors of one dtype.

    Not for tensors that wrap others (the batched tensors that ``autograd.grad(...,
    is_grads_batched=True)`` hands a backward, functorch wrappers): callers take their PyTorch
    path for those.
    """
    dtype = tensors[0].dtype
    for t in tensors:
        if (t.dtype != dtype or t.layout != torch.strided
                or not torch._C._dispatch_keys(t).has(torch._C.DispatchKey.CPU)):
            return None
    if dtype not in DTYPES:
        return None
    return library()


def threads(n: int) -> int:
    """OpenMP threads for a batch of ``n``: torch's intra-op count, at most one per 256 samples."""
    return max(1, min(torch.get_num_threads(), n // 256))
