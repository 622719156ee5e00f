// modelexport/validate/runtime_config.hpp — which runtime validate runs a package in, and how
// (validate/runtime.hpp runs it). Light: what a command line fills needs no validator.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace modelexport {

namespace fs = std::filesystem;

enum class runtime_kind { none, automatic, onnxruntime, transformers_js, optimum };

inline std::optional<runtime_kind> parse_runtime(const std::string& s) {
    if (s == "none") return runtime_kind::none;
    if (s == "auto") return runtime_kind::automatic;
    if (s == "onnxruntime") return runtime_kind::onnxruntime;
    if (s == "transformers-js") return runtime_kind::transformers_js;
    if (s == "optimum") return runtime_kind::optimum;
    return std::nullopt;
}

inline std::string to_string(runtime_kind k) {
    switch (k) {
        case runtime_kind::onnxruntime:
            return "onnxruntime";
        case runtime_kind::transformers_js:
            return "transformers-js";
        case runtime_kind::optimum:
            return "optimum";
        case runtime_kind::automatic:
            return "auto";
        default:
            return "none";
    }
}

struct runtime_config {
    std::string node = "node";
    std::string python = "python3";
    fs::path scripts_dir;  ///< tools/runtime (with node_modules/ from `npm install --ignore-scripts`)
    fs::path tasks_file;   ///< the task table the scripts read (MODELEXPORT_TASKS); empty: they look beside themselves
    std::chrono::seconds timeout{300};
};

}  // namespace modelexport
