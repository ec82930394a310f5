"""The user's cache of searched schedules: one JSON file in a folder (ComfyUI's models/vrg/).

``{"format": "vrg-search-cache", "version": 1, "searches": {<key>: record}}`` where the key is a
digest of what the search was made with (`cache_key`) and the record is
`SearchResult.to_record()` plus those `settings`. A damaged file is set aside (renamed) and a
damaged or inconsistent record is dropped, each with a warning, so a search always runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..error_table import ErrorTable
from ..errors import VRGError
from ..table_io import read_limited, table_to_bytes, write_atomic
from .result import SearchResult

FILE = "vrg_search_cache.json"
FORMAT = "vrg-search-cache"
VERSION = 1
MAX_BYTES = 16 * 1024 * 1024
NAMED_CHANGES = {"seed": "seed", "evaluations": "evaluations", "cfg": "cfg", "prompts": "number of prompts",
                 "sampler": "sampler", "variance_weight": "variance weight", "table": "error table",
                 "method": "search version"}  # a setting -> how the node names it


def cache_settings(method: int, base_sigmas, candidates: dict[str, np.ndarray], sampler: str, model_fingerprint: str,
                   table_digest: str, evaluations: int, variance_weight: float, seed: int, cfg: float,
                   prompts: int = 1) -> dict:
    """What a cached search must have been made with to be reused (candidates and base by their sigmas; `prompts`:
    how many prompts its noises alternated — the prompt itself is not part of it, see `SearchRequest`)."""
    every = {"base": np.asarray(base_sigmas).tolist(), **{k: np.asarray(v).tolist() for k, v in candidates.items()}}
    digest = hashlib.sha256(json.dumps(every, sort_keys=True).encode()).hexdigest()[:16]
    return {"method": method, "schedules": digest, "sampler": sampler, "steps": len(every["base"]) - 1,
            "model_fingerprint": model_fingerprint, "table": table_digest, "evaluations": int(evaluations),
            "variance_weight": float(variance_weight), "seed": int(seed), "cfg": float(cfg), "prompts": int(prompts)}


def cache_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


class SearchCache:
    """`folder`/vrg_search_cache.json; `warnings` collects what was set aside and why."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / FILE
        self.warnings: list[str] = []

    def _read(self) -> dict:
        empty = {"format": FORMAT, "version": VERSION, "searches": {}}
        if not self.path.exists():
            return empty
        try:
            data = json.loads(read_limited(self.path, MAX_BYTES).decode("utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("searches"), dict):
                raise ValueError("not a VRG search cache")
            if data.get("version", 0) > VERSION:
                raise ValueError(f"written by a newer VRG (version {data['version']})")
            return data
        except (VRGError, UnicodeDecodeError, ValueError) as e:
            stamp = f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
            aside, n = self.path.with_name(stamp), 1
            while aside.exists():  # never over an earlier damaged copy
                aside, n = self.path.with_name(f"{stamp}-{n}"), n + 1
            self.path.replace(aside)
            self.warnings.append(f"the search cache {self.path.name} was unreadable ({e}); it was renamed to "
                                 f"{aside.name} and a new one is started")
            return empty

    def find(self, settings: dict) -> SearchResult | None:
        """The cached result made with exactly `settings`, if any and sound."""
        record = self._read()["searches"].get(cache_key(settings))
        if record is None:
            return None
        try:
            if not isinstance(record, dict) or record.get("settings") != settings:
                raise VRGError("a stored searched schedule does not match its key")
            result = SearchResult.from_record(record)
            if result.steps != settings["steps"] or result.sampler != settings["sampler"]:
                raise VRGError(f"a stored searched schedule has {result.steps} steps for {result.sampler}, "
                               f"filed under {settings['steps']} steps for {settings['sampler']}")
        except VRGError as e:
            self.warnings.append(f"{e}; it is searched again")
            return None
        return result

    def changed(self, settings: dict) -> str | None:
        """Why no stored search serves `settings`, when one setting explains it: how `NAMED_CHANGES` names the only
        setting in which a stored search differs ("seed" when only the seed changed); None when a stored search
        has these very settings, or none differs in one named setting alone."""
        reasons = []
        for record in self._read()["searches"].values():
            stored = record.get("settings") if isinstance(record, dict) else None
            if isinstance(stored, dict) and stored.keys() == settings.keys():
                differ = [k for k in settings if stored[k] != settings[k]]
                if not differ:
                    return None
                reasons += [NAMED_CHANGES[differ[0]]] if len(differ) == 1 and differ[0] in NAMED_CHANGES else []
        return reasons[0] if reasons else None

    def store(self, result: SearchResult, settings: dict) -> None:
        """Add `result` (made with `settings`); the file is replaced atomically."""
        data = self._read()
        data["searches"][cache_key(settings)] = {**result.to_record(), "settings": settings}
        write_atomic(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def table_digest(table: ErrorTable | None) -> str:
    """A short content digest of an error table ("" for none), for `cache_settings`."""
    return "" if table is None else hashlib.sha256(table_to_bytes(table)).hexdigest()[:16]
