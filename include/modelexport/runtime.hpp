// modelexport/runtime.hpp — the runtime check: load the package in a real
// runtime and run one inference (docs/design.md §5.5).
//
// Runtimes run as child processes so modelexport links none of them:
//  - onnxruntime:     node tools/runtime/ort_check.mjs PKG   (npm onnxruntime-node)
//  - transformers-js: node tools/runtime/tjs_pipeline.mjs PKG --task T   (npm @huggingface/transformers;
//                     generated text, image or waveform)
//  - optimum:         python tools/runtime/optimum_check.py PKG CLASS    (ORTModelFor*.from_pretrained)
// `auto` takes the first installed of optimum (what the package is for: Optimum's
// ORTModelFor* loading it), onnxruntime, transformers-js.
#pragma once

#include "modelexport/json_file.hpp"
#include "modelexport/process.hpp"
#include "modelexport/tasks.hpp"
#include "modelexport/validator.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <set>
#include <string>

namespace modelexport {

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
        case runtime_kind::onnxruntime: return "onnxruntime";
        case runtime_kind::transformers_js: return "transformers-js";
        case runtime_kind::optimum: return "optimum";
        case runtime_kind::automatic: return "auto";
        default: return "none";
    }
}

struct runtime_config {
    std::string node = "node";
    std::string python = "python3";
    fs::path scripts_dir;  ///< tools/runtime (with node_modules/ from `npm install --ignore-scripts`)
    std::chrono::seconds timeout{300};
};

/// The runtime check as a validator policy.
class runtime_check {
public:
    runtime_check(runtime_kind kind, runtime_config cfg) : kind_(kind), cfg_(std::move(cfg)) {}

    /// Why `k` cannot run here, or empty when it can.
    std::string unavailable(runtime_kind k) const {
        if (k == runtime_kind::optimum) {
            if (find_program(cfg_.python).empty()) return cfg_.python + " not found";
            run_result r;
            try {
                r = run_process(cfg_.python, {"-c", "import optimum.onnxruntime"}, {std::chrono::seconds(60), {}, {}, 3});
            } catch (const std::exception& e) {  // a configured interpreter path that cannot start
                return cfg_.python + " cannot start: " + e.what();
            }
            return r.ok() ? "" : "optimum is not installed for " + cfg_.python + " (" + r.stderr_tail() + ")";
        }
        if (find_program(cfg_.node).empty()) return "node not found on PATH";
        const char* pkg = k == runtime_kind::onnxruntime ? "onnxruntime-node" : "@huggingface/transformers";
        if (!fs::is_directory(cfg_.scripts_dir / "node_modules" / pkg))
            // Not "npm install there": scripts_dir may be an installed share/ or a subproject's source tree.
            return std::string(pkg) + " is not installed in " + cfg_.scripts_dir.string() +
                   "; copy that directory somewhere writable, run 'npm ci --ignore-scripts' in the copy and set MODELEXPORT_RUNTIME_DIR to it";
        return "";
    }

    /// The runtime `auto` resolves to, or none.
    runtime_kind chosen() const {
        if (kind_ != runtime_kind::automatic) return kind_;
        for (auto k : {runtime_kind::optimum, runtime_kind::onnxruntime, runtime_kind::transformers_js})
            if (unavailable(k).empty()) return k;
        return runtime_kind::none;
    }

    std::optional<check_result> operator()(const fs::path& dir, const validation_report& report) const {
        if (kind_ == runtime_kind::none) return std::nullopt;
        runtime_kind k = chosen();
        if (k == runtime_kind::none)
            return check_result{"runtime", severity::warning, check_status::skip, "no runtime installed (auto): " + unavailable(runtime_kind::onnxruntime)};
        std::string id = "runtime." + to_string(k);
        if (std::string why = unavailable(k); !why.empty()) return check_result{id, severity::error, check_status::fail, why};
        std::string program = k == runtime_kind::optimum ? cfg_.python : cfg_.node;
        std::vector<std::string> args;
        fs::path abs = fs::absolute(dir);
        switch (k) {
            case runtime_kind::onnxruntime:
                args = {(cfg_.scripts_dir / "ort_check.mjs").string(), abs.string(), "--model", report.model};  // where the layout put it
                break;
            case runtime_kind::transformers_js:
                if (!tjs_supported(report.task))
                    return check_result{id, severity::warning, check_status::skip, "no transformers.js pipeline check for task " + report.task};
                args = {(cfg_.scripts_dir / "tjs_pipeline.mjs").string(), abs.string(), "--task", report.task, "--layout", to_string(report.layout)};
                if (report.task == "question-answering") args.insert(args.end(), {"--text", "where does john live ?", "--context", "john lives in paris"});
                if (report.task == "fill-mask") args.insert(args.end(), {"--text", "the movie was [MASK] ."});
                break;
            default: args = {(cfg_.scripts_dir / "optimum_check.py").string(), abs.string(), report.optimum_class}; break;
        }
        run_result r = run_process(program, args, {cfg_.timeout, {}, {}, 5});
        if (!r.ok()) return check_result{id, severity::error, check_status::fail, abs.string() + ": " + to_string(k) + " failed (" + r.describe(cfg_.timeout) + "): " + r.stderr_tail()};
        last_output_ = last_json_line(r.out);
        return check_result{id, severity::error, check_status::pass, "loaded and ran one inference: " + summary(k, last_output_),
                            metrics(last_output_)};
    }

    /// The runtime's JSON answer from the last run (outputs, pipeline result).
    const json& last_output() const { return last_output_; }

private:
    /// Tasks with a transformers.js pipeline (share/tasks.json).
    static bool tjs_supported(const std::string& task) {
        const task_info* t = find_task(task);
        return t && !t->transformers_js_pipeline.empty();
    }
    static json last_json_line(const std::string& out) {
        std::size_t end = out.size();
        while (end > 0) {
            std::size_t start = out.rfind('\n', end - 1);
            start = start == std::string::npos ? 0 : start + 1;
            std::string line = out.substr(start, end - start);
            if (!line.empty() && line.front() == '{') return json::parse(line, nullptr, false);
            if (start == 0) break;
            end = start - 1;
        }
        return json();
    }
    /// Inference monitoring (docs/design.md §5.5): the median latency of the timed runs that
    /// follow the first inference, and the runtime process's peak RSS, as the scripts report them.
    static json metrics(const json& out) {
        json m = json::object();
        if (!out.is_object()) return m;
        for (const char* key : {"latency_ms", "peak_rss_mb"})
            if (auto it = out.find(key); it != out.end() && it->is_number()) m[key] = *it;
        return m;
    }
    static std::string summary(runtime_kind k, const json& out) {
        if (!out.is_object()) return to_string(k);
        std::string s = out.value("runtime", to_string(k)) + " " + out.value("version", "");
        if (out.contains("outputs") && out["outputs"].is_object()) {
            s += "; outputs";
            for (const auto& [name, v] : out["outputs"].items()) s += " " + name + (v.contains("shape") ? v["shape"].dump() : "");
        }
        if (out.contains("result")) s += "; result " + out["result"].dump().substr(0, 160);
        json m = metrics(out);
        if (m.contains("latency_ms")) s += "; median latency " + std::to_string(m["latency_ms"].get<double>()).substr(0, 6) + " ms";
        if (m.contains("peak_rss_mb")) s += ", peak RSS " + std::to_string(m["peak_rss_mb"].get<long long>()) + " MB";
        return s;
    }

    runtime_kind kind_;
    runtime_config cfg_;
    mutable json last_output_;
};

}  // namespace modelexport
