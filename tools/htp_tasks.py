"""The task table (share/tasks.json, docs/design.md §5.3) for htp_exporter.py and htp_decoder.py.

The table is installed beside these scripts (share/modelexport/tasks.json); in the source
tree it is share/tasks.json, one directory above tools/. The C++ library and the runtime
scripts read the same file: nothing here is a second copy of it.
"""

import json
import os


def find_task_table():
    """The path of tasks.json: beside this module, else ../share/tasks.json."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "tasks.json"), os.path.join(here, os.pardir, "share", "tasks.json")):
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError("tasks.json not found beside %s or in ../share/ (reinstall modelexport)" % here)


with open(find_task_table(), encoding="utf-8") as _table:
    TASK_TABLE = json.load(_table)

# Task name or alias -> its entry: the first of a shared name, the row for models that are not
# encoder-decoders (an encoder-decoder's row names the exporter script that reads it).
TASKS = {}
for _entry in TASK_TABLE["tasks"]:
    for _name in [_entry["name"]] + _entry["aliases"]:
        TASKS.setdefault(_name, _entry)


def task_for(name, config):
    """The row of a task name for a config.json: where two rows share the name, the one with an
    encoder_decoder layout is for a config whose is_encoder_decoder is true (tasks.hpp's find_task)."""
    rows = [entry for entry in TASK_TABLE["tasks"] if name == entry["name"] or name in entry["aliases"]]
    wanted = config.get("is_encoder_decoder") is True
    return next((entry for entry in rows if bool(entry.get("encoder_decoder")) == wanted), rows[0] if rows else None)


def decoder_entry():
    """The entry of the decoder task (with_past: its KV cache is a graph input and output)."""
    return next(entry for entry in TASK_TABLE["tasks"] if entry["with_past"])


def axes(table_axes):
    """{"0": "batch_size"} as the table writes it -> {0: "batch_size"} as torch.onnx.export takes it."""
    return {int(axis): name for axis, name in table_axes.items()}


def fused_cache(config, cache):
    """The decoder cache's `fused` entry when config.json takes that form (its model_type is listed and its
    config_key is true, or absent and the rule's default is true: GPT-BigCode with multi_query), else None."""
    fused = cache.get("fused")
    for rule in (fused or {}).get("when", []):
        if config.get("model_type") == rule["model_type"]:
            value = config.get(rule["config_key"])
            return fused if (rule["default"] if value is None else value is True) else None
    return None
