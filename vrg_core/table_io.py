"""Error tables on disk and in text: safetensors with JSON metadata, and the official VRG text formats.

Files are written atomically (temporary file in the same folder, then `os.replace`), read
with a size limit checked before reading, and never unpickled.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load

from .errors import VRGError
from .error_table import ErrorTable, TableInfo, info_from_dict, info_to_json
from .parameterization import ModelKind

FORMAT = "vrg-error-table"
VERSION = 1
MAX_TABLE_BYTES = 16 * 1024 * 1024
TEXT_PREFIX = "VRG1:"
_ARRAYS = ("sigmas", "count", "sum_mse", "sum_mse_sq", "sum_mean_error")


# ---- bytes ----------------------------------------------------------------------------
def table_to_bytes(table: ErrorTable) -> bytes:
    """The table as safetensors bytes (float64 arrays, JSON metadata)."""
    meta = {
        "format": FORMAT,
        "version": str(VERSION),
        "kind": table.kind.value,
        "sigma_min": repr(table.sigma_min),
        "sigma_max": repr(table.sigma_max),
        "grid": str(len(table.sigmas)),
        "info": info_to_json(table.info),
    }
    return _safetensors_bytes({name: getattr(table, name) for name in _ARRAYS}, meta)


def _safetensors_bytes(arrays: dict[str, np.ndarray], meta: dict[str, str]) -> bytes:
    """The safetensors layout written with sorted keys, so equal tables give equal bytes.

    (The safetensors library orders metadata arbitrarily.) Arrays are stored as
    little-endian float64; the header is padded with spaces to 8 bytes, as the format allows.
    """
    header: dict = {"__metadata__": meta}
    blobs, offset = [], 0
    for name in sorted(arrays):
        blob = np.ascontiguousarray(arrays[name], dtype="<f8").tobytes()
        header[name] = {"dtype": "F64", "shape": [len(arrays[name])], "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def table_from_bytes(data: bytes, what: str = "table", again: str = "save the table again") -> ErrorTable:
    """Parse safetensors bytes written by `table_to_bytes`; VRGError naming `what` (and, for a damaged one,
    the fix `again`) otherwise."""
    meta = _safetensors_metadata(data, what, again)
    if meta.get("format") != FORMAT:
        raise VRGError(f"{what} is a safetensors file but not a VRG error table (format {meta.get('format')!r}); load a table saved by VRG")
    try:
        version = int(meta.get("version", ""))
    except ValueError:
        raise VRGError(f"{what} has an unreadable format version {meta.get('version')!r}") from None
    if version > VERSION:
        raise VRGError(f"{what} was written by a newer VRG (format version {version}); update the node pack")
    try:
        arrays = st_load(data)
        info = info_from_dict(json.loads(meta.get("info", "{}")))
    except (SafetensorError, ValueError, TypeError) as e:
        raise VRGError(f"{what} is damaged ({e}); {again}") from None
    missing = [n for n in _ARRAYS if n not in arrays]
    if missing:
        raise VRGError(f"{what} lacks the arrays {missing}; it is not a complete VRG error table")
    try:
        kind = ModelKind.parse(meta.get("kind", ""))
        return ErrorTable(kind, *(arrays[n].astype(np.float64) for n in _ARRAYS), info=info)
    except VRGError as e:
        raise VRGError(f"{what}: {e}") from None


def _safetensors_metadata(data: bytes, what: str, again: str) -> dict:
    if len(data) < 8:
        raise VRGError(f"{what} is empty or truncated ({len(data)} bytes), not a safetensors file; {again}")
    (header_len,) = struct.unpack("<Q", data[:8])
    if data.lstrip()[:1] in (b"{", b"["):
        raise VRGError(f"{what} is JSON text, not a safetensors file; load the .safetensors table VRG saved")
    if header_len > len(data) - 8 or header_len > 1024 * 1024:
        raise VRGError(f"{what} is not a safetensors file (bad header length); load a .safetensors VRG table")
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise VRGError(f"{what} is not a safetensors file (unreadable header); load a .safetensors VRG table") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise VRGError(f"{what} has no VRG metadata, so it is not a VRG error table; load a table saved by VRG")
    return meta


# ---- files ----------------------------------------------------------------------------
def save_table(table: ErrorTable, path: str | os.PathLike) -> Path:
    """Write atomically: a crash mid-write leaves any previous file at `path` intact."""
    return write_atomic(Path(path), table_to_bytes(table))


def load_table(path: str | os.PathLike) -> ErrorTable:
    """Read a VRG table file, or an official VRG MSE-vs-ᾱ text table (`.txt`/`.tsv`)."""
    path = Path(path)
    data = read_limited(path, MAX_TABLE_BYTES)
    if path.suffix.lower() in (".txt", ".tsv"):
        return official_table_from_text(_decode_text(data, path), str(path))
    return table_from_bytes(data, f"table file '{path.name}'")


def read_limited(path: Path, limit: int) -> bytes:
    """File bytes, refusing a missing, non-regular or oversized file before reading it."""
    try:
        st = path.stat()
    except OSError:
        raise VRGError(f"file '{path}' does not exist; check the name") from None
    if not path.is_file():
        raise VRGError(f"'{path}' is not a regular file; give the path of a file")
    if st.st_size > limit:
        raise VRGError(f"file '{path.name}' is {st.st_size} bytes, over the {limit}-byte limit for this kind of file; "
                       "check that it is the right file")
    return path.read_bytes()


def write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # as ComfyUI writes its files (mkstemp makes them private)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _decode_text(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise VRGError(f"file '{path.name}' is not UTF-8 text; expected an official VRG text file") from None


# ---- compact text (a table inside a shared workflow) ------------------------------------
def table_to_text(table: ErrorTable) -> str:
    """One line: `VRG1:` + base64 of the safetensors bytes."""
    return TEXT_PREFIX + base64.b64encode(table_to_bytes(table)).decode("ascii")


def table_from_text(text: str) -> ErrorTable:
    text = text.strip()
    if not text.startswith(TEXT_PREFIX):
        raise VRGError(f"table text must start with '{TEXT_PREFIX}'; paste the text made by VRG Error Table To Text")
    body = text[len(TEXT_PREFIX) :]
    if len(body) > MAX_TABLE_BYTES * 4 // 3 + 4:
        raise VRGError("table text is too long to be a VRG error table")
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise VRGError("table text is not valid base64 after 'VRG1:'; copy the whole text again") from None
    return table_from_bytes(data, "table text", "copy the whole text made by VRG Error Table To Text again")


# ---- the official VRG text formats --------------------------------------------------------
def _data_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def official_table_from_text(text: str, what: str = "official table") -> ErrorTable:
    """The official `timestep <TAB> ᾱ <TAB> mse` table (mse of ε̂ − ε per dimension) as an EPS table.

    Rows with ᾱ outside (0, 1) — the official zero sentinel — are dropped; rows that share
    one ᾱ are pooled into one level.
    """
    alpha_bar, mse = [], []
    for n, line in enumerate(_data_lines(text), 1):
        parts = line.split()
        try:
            ab, m = float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise VRGError(f"{what}: data line {n} {line[:60]!r} is not 'timestep, alpha_bar, mse'") from None
        if 0.0 < ab < 1.0:
            alpha_bar.append(ab)
            mse.append(m)
    if len(alpha_bar) < 2:
        raise VRGError(f"{what} has fewer than 2 usable rows; it is not an official VRG MSE table")
    sigma = np.sqrt((1.0 - np.array(alpha_bar)) / np.array(alpha_bar))
    levels, level = np.unique(sigma, return_inverse=True)
    mse_arr = np.array(mse)
    return ErrorTable.from_samples(ModelKind.EPS, levels, level, mse_arr, np.zeros_like(mse_arr), TableInfo(source=what))


def official_trajectory_from_text(text: str, what: str = "official trajectory") -> np.ndarray:
    """σ schedule (descending, ending at 0) from an official ᾱ trajectory file.

    The official files list ᾱ clean→noisy. An input trajectory (plain numbers) starts with
    the ᾱ of timestep 0, which the official code drops; so do we. An optimiser output file
    (`ᾱ : timestep: …` lines) has no such entry.
    """
    lines = _data_lines(text)
    try:
        values = [float(ln.split(":")[0]) for ln in lines]
    except ValueError:
        raise VRGError(f"{what}: a data line is not a number; expected an official alpha_bar trajectory") from None
    if lines and ":" not in lines[0]:
        values = values[1:]
    ab = np.array(values, dtype=np.float64)
    if len(ab) < 1 or not np.all((ab > 0) & (ab < 1)) or np.any(np.diff(ab) >= 0):
        raise VRGError(f"{what}: alpha_bar values must lie in (0, 1) and fall strictly; check the file")
    return np.append(np.sqrt((1.0 - ab) / ab)[::-1], 0.0)
