#!/usr/bin/env python3
"""Generates modelexport/tasks_table.hpp from share/tasks.json (docs/design.md §5.3).

The header-only library then carries the table in its code: no data file to find at run
time. Usage: gen_tasks_header.py share/tasks.json OUTPUT.hpp
"""
import json
import sys


def literal(text):
    # JSON string escapes of ASCII text are valid C++ escapes.
    text.encode("ascii")
    return json.dumps(text)


def strings(items):
    return "{" + ", ".join(literal(s) for s in items) + "}"


def axis_list(axes):
    return "{" + ", ".join("{%d, %s}" % (int(i), literal(a)) for i, a in sorted(axes.items(), key=lambda kv: int(kv[0]))) + "}"


def fused_cache(f):
    if not f:
        return "{}"
    rules = ", ".join("{%s, %s, %s}" % (literal(r["model_type"]), literal(r["config_key"]), cpp_bool(r["default"])) for r in f["when"])
    return "{%s, {%s}, %s, %s}" % (literal(f["suffix"]), rules, axis_list(f["input_axes"]), axis_list(f["output_axes"]))


def cache(c):
    if not c:
        return "{}"
    return "{%s, %s, %s, %s, %s}" % (literal(c["input_prefix"]), literal(c["output_prefix"]), axis_list(c["input_axes"]),
                                     axis_list(c["output_axes"]), fused_cache(c.get("fused")))


def encoder_decoder(e):
    if not e:
        return "{}"
    return "{%s, %s, %s, %s}" % (literal(e["exporter"]), literal(e["exporter_task"]), strings(e["files"]),
                                 literal(e["decoder_output"]))


def alternatives(a):
    return "{" + ", ".join("{%s, %s}" % (literal(name), strings(instead)) for name, instead in a.items()) + "}"


def task_entry(t):
    axes = ", ".join("{%s, %s}" % (literal(name), axis_list(ax)) for name, ax in t["dynamic_axes"].items())
    rules = ", ".join("{%s, %s}" % (literal(r["suffix"]), strings(r["model_types"])) for r in t["model_type_suffixes"])
    fields = [literal(t["name"]), strings(t["aliases"]), literal(t["optimum_class"]), "modality::" + t["modality"],
              strings(t["inputs"]), strings(t["optional_inputs"]), strings(t["outputs"]), strings(t["optional_outputs"]),
              "{" + axes + "}", strings(t["architecture_suffixes"]), "{" + rules + "}", literal(t["auto_class"]),
              literal(t["transformers_js_pipeline"] or ""), cpp_bool(t["needs_tokenizer"]), cpp_bool(t["labels"]),
              str(int(t["labels_extra"])), cpp_bool(t["with_past"]), cache(t.get("cache")),
              encoder_decoder(t.get("encoder_decoder")), alternatives(t.get("input_alternatives", {}))]
    return "        {" + ", ".join(fields) + "},"


def cpp_bool(value):
    if not isinstance(value, bool):
        raise ValueError("expected true or false, got %r" % (value,))
    return "true" if value else "false"


def main(argv):
    src, out = argv[1], argv[2]
    with open(src, encoding="utf-8") as f:
        doc = json.load(f)
    lines = [
        "// modelexport/tasks_table.hpp — GENERATED from share/tasks.json by tools/gen_tasks_header.py.",
        "// Edit the JSON, not this file. Included by tasks.hpp after task_info is defined, and by the",
        "// compiled library's src/tasks.cpp only when MODELEXPORT_COMPILED_LIB is defined.",
        "#pragma once",
        "",
        "namespace modelexport {",
        "",
        "/// The task table, in share/tasks.json's order (architecture suffixes are matched in this order).",
        "MODELEXPORT_ENTRY const std::vector<task_info>& tasks() {",
        "    static const std::vector<task_info> table{",
    ]
    lines += [task_entry(t) for t in doc["tasks"]]
    lines += ["    };", "    return table;", "}", "",
              "/// Optimum's tasks modelexport does not export, with the reason.",
              "MODELEXPORT_ENTRY const std::vector<refused_task>& refused_tasks() {",
              "    static const std::vector<refused_task> table{"]
    lines += ["        {%s, %s, %s, %s}," % (literal(t["name"]), strings(t["aliases"]), literal(t["reason"]),
                                           strings(t.get("model_types", []))) for t in doc["not_exported"]]
    lines += ["    };", "    return table;", "}", ""]
    names = sorted(doc["model_types"]["names"])
    lines += [
        "/// The config.json model_type values transformers knows, sorted (share/tasks.json \"model_types\").",
        "MODELEXPORT_ENTRY const std::vector<std::string_view>& known_model_types() {",
        "    static const std::vector<std::string_view> names{",
    ]
    lines += ["        %s," % literal(n) for n in names]
    lines += ["    };", "    return names;", "}", "", "}  // namespace modelexport", ""]
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv)
