"""The ONNX files an htp export of a source writes, for the Meson template at configure time.

    python3 plan_onnx_files.py CONFIG.json [TASK]

prints one name per line: the task's `encoder_decoder.files` (share/tasks.json) for an
encoder-decoder task, else model.onnx. The task is TASK (a name or alias: its row for this config) when given, else the one
config.json's `architectures` names, with the rule of tasks.hpp's task_for_architecture (the longest
matching suffix, then one restricted to the config's model_type). This is `modelexport plan`'s
package_onnx_files (plan.hpp) for a build whose modelexport is not built yet (a subproject's tool
does not exist at configure time); tests/e2e/test_consumer.py checks both give the same list.
An unreadable config or unknown task prints model.onnx: the export then names the problem.
"""
import json
import sys

from htp_tasks import TASK_TABLE, task_for


def task_for_architecture(arch, model_type):
    best, best_key = None, (0, False)
    for entry in TASK_TABLE["tasks"]:
        rules = [(s, False) for s in entry["architecture_suffixes"]]
        rules += [(r["suffix"], True) for r in entry["model_type_suffixes"] if model_type in r["model_types"]]
        for suffix, restricted in rules:
            key = (len(suffix), restricted)
            if len(arch) > len(suffix) and arch.endswith(suffix) and key > best_key:
                best, best_key = entry, key
    return best


def inferred_task(config):
    architectures = config.get("architectures")
    model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else ""
    for arch in architectures if isinstance(architectures, list) else []:
        if isinstance(arch, str) and (entry := task_for_architecture(arch, model_type)):
            return entry
    return None


def onnx_files(config, requested):
    entry = task_for(requested, config) if requested else inferred_task(config)
    files = (entry or {}).get("encoder_decoder", {}).get("files")
    return files or ["model.onnx"]


def main(argv):
    try:
        with open(argv[1], encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        config = {}
    print("\n".join(onnx_files(config if isinstance(config, dict) else {}, argv[2] if len(argv) > 2 else "")))


if __name__ == "__main__":
    main(sys.argv)
