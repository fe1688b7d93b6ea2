"""Checkpoint integrity: the content digest, and metadata fields read with expected-vs-received errors.

``digest`` is the SHA-256 of a safetensors file's tensor table (names, dtypes, shapes, offsets; the
metadata entry excluded), the gaugeflow JSON block and the whole tensor payload, stored in the header
metadata under :data:`DIGEST_KEY` and recomputed by every read. :func:`meta_int` and
:func:`meta_bytes` read one metadata field and raise a one-line :class:`CheckpointError` naming the
file, the field, what was expected and what arrived.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

__all__ = ["CheckpointError", "DIGEST_KEY", "digest", "verify_digest", "meta_int", "meta_bytes",
           "encode_bytes", "decode_bytes"]

DIGEST_KEY = "gaugeflow_sha256"


class CheckpointError(ValueError):
    """A checkpoint file is truncated, foreign, corrupt or does not match the model it is loaded into."""


def encode_bytes(t: torch.Tensor) -> str:
    """Base64 text of a ``uint8`` tensor (RNG states travel as text in the JSON block)."""
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def decode_bytes(s: str) -> torch.Tensor:
    """Inverse of :func:`encode_bytes`."""
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def digest(header: dict[str, Any], raw_meta: str, payload: memoryview) -> str:
    """SHA-256 of the tensor table (without the metadata), the gaugeflow JSON block and the payload bytes."""
    table = {k: v for k, v in header.items() if k != "__metadata__"}
    h = hashlib.sha256(json.dumps(table, sort_keys=True).encode())
    h.update(b"\0" + raw_meta.encode() + b"\0")
    h.update(payload)
    return h.hexdigest()


def verify_digest(path: Path, header: dict[str, Any], meta: dict[str, Any], data: bytes) -> None:
    """Recompute the content digest; one-line :class:`CheckpointError` when it is missing or differs."""
    block = header.get("__metadata__") or {}
    stored = block.get(DIGEST_KEY)
    if stored is None:
        if isinstance(meta.get("format_version"), int) and meta["format_version"] < 2:
            return  # written before digests existed
        raise CheckpointError(f"{path}: corrupt checkpoint: its content digest ({DIGEST_KEY}) is missing")
    (n,) = struct.unpack("<Q", data[:8])
    computed = digest(header, block["gaugeflow"], memoryview(data)[8 + n:])
    if computed != stored:
        raise CheckpointError(f"{path}: corrupt checkpoint: content digest mismatch (stored sha256 {str(stored)[:12]}..., "
                              f"computed {computed[:12]}...); the file was damaged or modified after it was written")


def meta_int(ckpt: "Checkpoint", key: str, minimum: int = 0, maximum: int = 2**64 - 1, default: Any = None) -> int:
    """The integer metadata field ``key`` (dots for nesting); one-line :class:`CheckpointError` unless
    it is an integer in ``[minimum, maximum]`` (expected vs received)."""
    value: Any = ckpt.meta
    for part in key.split("."):
        value = value.get(part, default) if isinstance(value, dict) else None
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise CheckpointError(f"{ckpt.path}: metadata field {key!r}: expected an integer in [{minimum}, {maximum}], "
                              f"got {value!r} ({type(value).__name__})")
    return value


def meta_bytes(ckpt: "Checkpoint", key: str, like: torch.Tensor) -> torch.Tensor:
    """Base64 metadata field ``key`` decoded to a ``uint8`` tensor of ``like``'s length (an RNG state)."""
    value: Any = ckpt.meta
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, str):
        raise CheckpointError(f"{ckpt.path}: metadata field {key!r}: expected base64 text of a generator state, "
                              f"got {'nothing' if value is None else type(value).__name__}")
    try:
        state = decode_bytes(value)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"{ckpt.path}: metadata field {key!r}: not valid base64") from None
    if state.numel() != like.numel():
        raise CheckpointError(f"{ckpt.path}: metadata field {key!r}: expected {like.numel()} bytes of generator state, "
                              f"got {state.numel()} (cut or corrupt)")
    return state
