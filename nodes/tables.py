"""Error tables on disk: save / load under models/vrg/ (plus the bundled tables), merge."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import folder_paths
from comfy_api.v0_0_2 import io

from ..vrg_core.bundle import BUNDLE_DIR, list_bundled_tables, load_bundled_table
from ..vrg_core.error_table import ErrorTable
from ..vrg_core.errors import VRGError
from ..vrg_core.table_io import load_table, save_table
from .common import CATEGORY, ErrorTableIO, report

FOLDER = "vrg"
EXTENSIONS = {".safetensors", ".txt", ".tsv"}  # VRG tables; the official VRG text tables
BUNDLED = "bundled: "


def register_folder() -> None:
    """models/vrg/ as a ComfyUI model folder (kept as configured if extra_model_paths already has it)."""
    paths, extensions = folder_paths.folder_names_and_paths.get(FOLDER, ([], set()))
    default = os.path.join(folder_paths.models_dir, FOLDER)
    folder_paths.folder_names_and_paths[FOLDER] = (paths or [default], set(extensions) | EXTENSIONS)


MAX_NAME_BYTES = 200  # below the usual 255-byte file-name limit, leaving room for the temporary file's affixes


def save_path(name: str, what: str = "table", suffix: str = ".safetensors", folder: str = FOLDER) -> Path:
    """Where `what` `name` is saved: <`folder`'s first path>/<name><suffix>, never outside that folder."""
    root = Path(folder_paths.get_folder_paths(folder)[0]).resolve()
    shown = f"models/{FOLDER}/" + ("" if folder == FOLDER else f"{root.name}/")
    clean = name.strip()
    if not clean:
        raise VRGError(f"give the {what} a file name, e.g. 'sd15_cfg7'")
    if "\x00" in clean:
        raise VRGError(f"{what} name {name!r} contains a NUL byte; use a plain name such as 'sd15_cfg7'")
    if not clean.lower().endswith(suffix):
        clean += suffix
    if len(Path(clean).name.encode()) > MAX_NAME_BYTES:
        raise VRGError(f"{what} name '{clean[:40]}…' is {len(name.strip())} characters long; file systems allow about "
                       f"{MAX_NAME_BYTES} bytes: use a shorter name such as 'sd15_cfg7'")
    path = (root / clean).resolve()
    if root not in path.parents:
        raise VRGError(f"{what} name {name!r} points outside {shown}; use a plain name such as 'sd15_cfg7'")
    return path


def table_choices() -> list[str]:
    return folder_paths.get_filename_list(FOLDER) + [BUNDLED + n for n in list_bundled_tables()]


def table_file(name: str) -> Path:
    """The file behind a Load choice (a bundled table's own file for `bundled: <name>`)."""
    if name.startswith(BUNDLED):
        return BUNDLE_DIR / "index.json"
    path = folder_paths.get_full_path(FOLDER, name)
    if path is None:
        raise VRGError(f"error table {name!r} is not in models/{FOLDER}/; refresh the list or save it again")
    return Path(path)


def load_choice(name: str) -> ErrorTable:
    """The table behind a Load choice: a file in models/vrg/ or `bundled: <name>`."""
    return load_bundled_table(name[len(BUNDLED):]) if name.startswith(BUNDLED) else load_table(table_file(name))


class VRGSaveErrorTable(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGSaveErrorTable",
            display_name="VRG Save Error Table",
            category=CATEGORY,
            description="Saves an error table as models/vrg/<name>.safetensors (with its model kind, sigma range, "
                        "model fingerprint and cfg), replacing any file of that name in one step.",
            inputs=[
                ErrorTableIO.Input("table", tooltip="The table to save."),
                io.String.Input("name", default="vrg_table",
                                tooltip="File name under models/vrg/ (subfolders allowed; .safetensors is added)."),
            ],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, table, name) -> io.NodeOutput:
        path = save_table(table, save_path(name))
        relative = path.relative_to(Path(folder_paths.get_folder_paths(FOLDER)[0]).resolve()).as_posix()
        text = f"saved models/{FOLDER}/{relative} ({table.kind.label}, {len(table.sigmas)} levels)"
        return io.NodeOutput(ui=report(cls, text, files=[relative]))


class VRGLoadErrorTable(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGLoadErrorTable",
            display_name="VRG Load Error Table",
            category=CATEGORY,
            description="Loads an error table saved in models/vrg/ (also the official VRG .txt tables) or one "
                        "bundled with the node pack.",
            inputs=[io.Combo.Input("name", options=table_choices(),
                                   tooltip="A table file in models/vrg/, or 'bundled: <name>'.")],
            outputs=[ErrorTableIO.Output(display_name="table")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def fingerprint_inputs(cls, name):
        return table_file(name).stat().st_mtime_ns

    @classmethod
    def execute(cls, name) -> io.NodeOutput:
        table = load_choice(name)
        info = table.info
        text = (f"{table.kind.label} table, sigma {table.sigma_min:.4g}..{table.sigma_max:.4g}, "
                f"{len(table.sigmas)} levels, {int(table.count.sum())} samples, cfg {info.cfg:g}"
                + (f", model {info.model_fingerprint}" if info.model_fingerprint else ""))
        return io.NodeOutput(table, ui=report(cls, text))


class VRGMergeErrorTables(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VRGMergeErrorTables",
            display_name="VRG Merge Error Tables",
            category=CATEGORY,
            description="Adds up error tables measured on the same model and noise-level grid (e.g. on several "
                        "machines or image sets) into one, as if profiled in one run.",
            inputs=[
                ErrorTableIO.Input("table_1", tooltip="A table."),
                ErrorTableIO.Input("table_2", tooltip="A table of the same model, grid size and model kind."),
                ErrorTableIO.Input("table_3", optional=True, tooltip="Optional further table."),
                ErrorTableIO.Input("table_4", optional=True, tooltip="Optional further table."),
            ],
            outputs=[ErrorTableIO.Output(display_name="table")],
        )

    @classmethod
    def execute(cls, table_1, table_2, table_3=None, table_4=None) -> io.NodeOutput:
        tables = [t for t in (table_1, table_2, table_3, table_4) if t is not None]
        return io.NodeOutput(functools.reduce(lambda a, b: a.merge(b), tables))


NODES = [VRGSaveErrorTable, VRGLoadErrorTable, VRGMergeErrorTables]
