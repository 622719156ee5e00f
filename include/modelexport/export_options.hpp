// modelexport/export_options.hpp — what one export is asked to do (docs/design.md §3).
//
// Only the library's concerns: a build system's additions (--depfile, --expect,
// --keep, --report) are export/build_edge.hpp's.
#pragma once

#include "modelexport/cache/settings.hpp"
#include "modelexport/error.hpp"
#include "modelexport/export/step_event.hpp"
#include "modelexport/package/layout.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace modelexport {

namespace fs = std::filesystem;

enum class strategy { automatic, htp, prebuilt, command };

inline std::string to_string(strategy s) {
    switch (s) {
        case strategy::htp:
            return "htp";
        case strategy::prebuilt:
            return "prebuilt";
        case strategy::command:
            return "command";
        default:
            return "auto";
    }
}

/// `--onnx-file` names a file inside the source (prebuilt) or inside the command's {output}: never one elsewhere.
inline void check_onnx_file_option(const std::string& onnx_file) {
    for (const auto& part : fs::path(onnx_file))
        if (part == ".." || fs::path(onnx_file).is_absolute())
            throw usage_error("--onnx-file", "'" + onnx_file + "' must be a relative path without '..'");
}

struct export_options {
    std::string source;  ///< directory or Hub id
    fs::path output;     ///< package directory
    std::string task;    ///< empty: from config.json architectures
    strategy how = strategy::automatic;
    std::string model_factory;  ///< htp without transformers: "file.py:factory" (relative to the source)
    std::string library =
        "transformers";  ///< htp: "sentence-transformers" exports the checkpoint's pooling too (modules.json)
    std::string python = "python3";  ///< interpreter for the exporter
    fs::path exporter_script;        ///< tools/htp_exporter.py
    std::string command;             ///< command strategy: shell command with {source} and {output}
    std::string onnx_file;           ///< prebuilt: file in the source (default model.onnx, then onnx/model.onnx)
    int opset = 14;
    bool opset_given = false;  ///< --opset asked for: exactly it; else 14, raised where an operator needs a newer one
    double atol = 0;           ///< the reference check's tolerance; 0: the exporter's default
    bool reference_check = true;  ///< compare the ONNX model's outputs with torch's after the export
    bool embed_hierarchy = false;
    std::vector<std::string>
        variants;  ///< --variants (export/variants.hpp); made after the cached step, so not in the cache key
    std::vector<std::string>
        variant_tolerances;  ///< --variant-tolerance [VARIANT:]MEASURE=VALUE, passed to the variant tool
    bool include_torch_modules = false;
    package_layout layout =
        package_layout::flat;  ///< where the ONNX files go; acts after the cached step, so not in the cache key
    std::chrono::seconds timeout{1800};
    fs::path hub_cache;     ///< Hugging Face cache for Hub ids; empty: hub_cache_dir() (the environment)
    fs::path tool_path;     ///< the running tool, a dependency of every package
    bool validate = false;  ///< validate the staged package before it replaces the target
    cache_settings cache;   ///< the export cache (§10); off unless the caller enables it (the CLI does)
    std::function<void(const std::string&)> log;                  ///< notes (waiting for a lock, ...)
    std::function<void(const step_event&)> on_step;               ///< step start/end, for progress
    std::function<void(const std::string&, bool)> exporter_line;  ///< exporter's output lines
};

/// The build system's side of one export (export/build_edge.hpp runs it).
struct build_edge {
    fs::path depfile;                 ///< Make-style depfile of every input read; empty: none
    std::vector<std::string> expect;  ///< declared package files; empty: not checked
    std::vector<std::string> keep;    ///< build files that live in the package directory
    fs::path report;                  ///< JSON report (timings, sizes, result); empty: none
};

}  // namespace modelexport
