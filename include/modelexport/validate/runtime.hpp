// modelexport/validate/runtime.hpp — the runtime check: load the package in a real
// runtime and run one inference (docs/design.md §5.5).
//
// Runtimes run as child processes so modelexport links none of them:
//  - onnxruntime:     node tools/runtime/ort_check.mjs PKG   (npm onnxruntime-node)
//  - transformers-js: node tools/runtime/tjs_pipeline.mjs PKG --task T   (npm @huggingface/transformers;
//                     generated text, image or waveform); encoder-decoders: tjs_seq2seq.mjs
//  - optimum:         python tools/runtime/optimum_check.py PKG CLASS    (ORTModelFor*.from_pretrained)
// A package with variants (export --variants) has each run too after the model passes: onnxruntime
// every variant file, transformers.js each dtype file with its --dtype (docs/variants.md).
// `auto` takes the first of optimum (what the package is for: Optimum's ORTModelFor* loading
// it), onnxruntime, transformers-js that can start.
//
// A script's verdict on the package is exit 0 (it ran) or exit 1 with its last stderr line
// "<prog>: error: <message>". Anything else it ends with (exit 3 "<prog>: unavailable: ...", its
// own start-up failing, a missing interpreter) says nothing about the package: the runtime is
// unavailable, never a failed check.
#pragma once

#include "modelexport/detail/json_file.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/detail/process.hpp"
#include "modelexport/package/variant_names.hpp"
#include "modelexport/tasks.hpp"
#include "modelexport/validate/runtime_config.hpp"
#include "modelexport/validator.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace modelexport {

/// The exit status with which a runtime script says it could not start (tools/runtime/cli.mjs,
/// optimum_check.py).
constexpr int runtime_script_unavailable = 3;

/// The line of a child's stderr that says what went wrong: the script's own "<prog>: error: " or
/// "<prog>: unavailable: " line (its message), else the last line of a Python traceback, else the
/// first "...Error: ..." line of a Node exception, else the last non-empty line.
inline std::string first_error_line(const std::deque<std::string>& lines, const std::string& prog) {
    for (auto it = lines.rbegin(); it != lines.rend(); ++it)
        for (const char* verdict : {": error: ", ": unavailable: "})
            if (it->rfind(prog + verdict, 0) == 0)
                return printable(it->substr(prog.size() + std::string(verdict).size()));
    std::string last;
    for (const auto& l : lines)
        if (l.find_first_not_of(" \t") != std::string::npos) last = l;
    bool traceback = std::find(lines.begin(), lines.end(), "Traceback (most recent call last):") != lines.end();
    if (!traceback) {
        static const std::regex node_error(R"(^[\w$.]*(Error|Exception)( \[\w+\])?: )");
        for (const auto& l : lines)
            if (std::regex_search(l, node_error)) return printable(l);
    }
    return printable(last);
}

/// The runtime check as a validator policy.
class runtime_check {
public:
    runtime_check(runtime_kind kind, runtime_config cfg) : kind_(kind), cfg_(std::move(cfg)) {}

    /// The runtime that ran the last check (what `auto` resolved to), or none.
    runtime_kind ran() const { return ran_; }

    /// Runs the package in the chosen runtime (`auto`: the first that starts); nullopt for none.
    std::optional<check_result> operator()(const fs::path& dir, const validation_report& report) const;

    /// The runtime's JSON answer from the last run (outputs, pipeline result).
    const json& last_output() const { return last_output_; }

private:
    /// One runtime's outcome: its check, or why it could not start.
    struct attempt {
        std::optional<check_result> result;
        std::string unavailable;
    };

    /// The program and arguments that check `dir` in runtime `k`, or a skip result.
    struct invocation {
        std::string program;
        std::vector<std::string> args;
        std::optional<check_result> skip;
    };

    invocation command(runtime_kind k, const fs::path& abs, const validation_report& report) const {
        const std::string id = "runtime." + to_string(k);
        const task_info* task = report.row ? report.row : find_task(report.task);
        switch (k) {
            case runtime_kind::onnxruntime:
                // The model where the layout put it.
                return {cfg_.node,
                        {(cfg_.scripts_dir / "ort_check.mjs").string(), abs.string(), "--model", report.model},
                        {}};
            case runtime_kind::transformers_js: {
                if (!task || task->transformers_js_pipeline.empty())
                    return {{},
                            {},
                            check_result{id, severity::warning, check_status::skip,
                                         "no transformers.js pipeline check for task " + report.task}};
                std::string pipeline(task->transformers_js_pipeline);
                if (!task->encoder_decoder.empty() && !decodes_with_cache(*task))
                    return {{},
                            {},
                            check_result{id, severity::warning, check_status::skip,
                                         "transformers.js reads only decoder_model_merged.onnx, which " + report.task +
                                             " has not (its -with-past task writes it)"}};
                if (!task->encoder_decoder.empty()) {
                    // Two ONNX files and generate(): transformers.js reads them from onnx/ unless told the flat layout.
                    std::vector<std::string> args{(cfg_.scripts_dir / "tjs_seq2seq.mjs").string(), abs.string(),
                                                  "--task", pipeline};
                    if (report.layout == package_layout::flat) args.insert(args.end(), {"--subfolder", ""});
                    return {cfg_.node, args, {}};
                }
                std::vector<std::string> args{(cfg_.scripts_dir / "tjs_pipeline.mjs").string(),
                                              abs.string(),
                                              "--task",
                                              report.task,
                                              "--layout",
                                              to_string(report.layout)};
                if (report.task == "question-answering")
                    args.insert(args.end(), {"--text", "where does john live ?", "--context", "john lives in paris"});
                if (report.task == "fill-mask") args.insert(args.end(), {"--text", "the movie was [MASK] ."});
                return {cfg_.node, args, {}};
            }
            default: {
                std::vector<std::string> args{(cfg_.scripts_dir / "optimum_check.py").string(), abs.string(),
                                              report.optimum_class};
                // Optimum's ORTModel classes of generators expect a cache unless told otherwise (its text-generation
                // and text2text-generation have none).
                if (task && (!task->encoder_decoder.empty() || task->optimum_class == "ORTModelForCausalLM") &&
                    !decodes_with_cache(*task))
                    args.emplace_back("--no-cache");
                return {cfg_.python, args, {}};
            }
        }
    }

    /// Each variant file of the package's model (export --variants) with the invocation that runs it in
    /// `k`: onnxruntime every ONNX and ORT-format variant, transformers.js each dtype's file by its
    /// dtype (what its `dtype` option loads), Optimum each ONNX variant by its file_name= (Optimum loads
    /// no ORT format). An encoder-decoder's variants are not run: no client loads one file of the set.
    std::vector<std::pair<std::string, invocation>> variant_commands(runtime_kind k, const fs::path& abs,
                                                                     const validation_report& report,
                                                                     const invocation& main) const {
        std::vector<std::pair<std::string, invocation>> out;
        const task_info* task = report.row ? report.row : find_task(report.task);
        if ((task && !task->encoder_decoder.empty()) || main.skip) return out;
        const std::string primary = fs::path(report.model).filename().string();
        for (const auto& kind : variant_kinds) {
            const std::string name(kind.name), file = layout_path(report.layout, variant_file_name(primary, name));
            if (!fs::is_regular_file(abs / file)) continue;
            if (k == runtime_kind::onnxruntime)
                out.push_back(
                    {file,
                     {cfg_.node, {(cfg_.scripts_dir / "ort_check.mjs").string(), abs.string(), "--model", file}, {}}});
            if (k == runtime_kind::transformers_js && kind.name != ort_variant) {
                invocation inv = main;
                inv.args.insert(inv.args.end(), {"--dtype", name});
                out.push_back({file + " (dtype " + name + ")", inv});
            }
            if (k == runtime_kind::optimum && kind.name != ort_variant) {
                invocation inv = main;
                inv.args.insert(inv.args.end(), {"--file-name", file});
                out.push_back({file, inv});
            }
        }
        return out;
    }

    /// Runs one invocation: the result, and the script's name for its error lines.
    std::pair<run_result, std::string> execute(const invocation& inv) const {
        run_options opts{cfg_.timeout, {}, {}, 20};
        if (!cfg_.tasks_file.empty()) opts.env["MODELEXPORT_TASKS"] = fs::absolute(cfg_.tasks_file).string();
        return {run_process(inv.program, inv.args, opts),
                fs::path(inv.args.front()).stem().string()};  // ort_check, tjs_pipeline, ...
    }

    /// "DIR: onnxruntime failed (timed out after 300 s): its first error line", without an empty tail.
    std::string failure(const fs::path& shown, runtime_kind k, const run_result& r, const std::string& prog) const {
        const std::string said = first_error_line(r.last_err, prog);
        return shown.string() + ": " + to_string(k) + " failed (" + r.describe(cfg_.timeout) + ")" +
               (said.empty() ? "" : ": " + said);
    }

    attempt run(runtime_kind k, const fs::path& dir, const validation_report& report) const {
        const std::string id = "runtime." + to_string(k);
        const fs::path abs = fs::absolute(dir);
        invocation inv = command(k, abs, report);
        if (inv.skip) {
            ran_ = k;
            return {inv.skip, {}};
        }
        if (std::string exe = find_program(inv.program); exe.empty() || !fs::exists(exe))
            return {{}, inv.program + " not found"};
        run_result r;
        std::string prog;
        try {
            std::tie(r, prog) = execute(inv);
        } catch (const std::exception& e) {  // a configured interpreter path that cannot start
            return {{}, inv.program + " cannot start: " + e.what()};
        }
        const bool verdict = r.ok() || r.timed_out || r.signal || (r.exit_status == 1 && said_error(r, prog));
        if (!verdict) return {{}, first_error_line(r.last_err, prog) + " (" + r.describe(cfg_.timeout) + ")"};
        ran_ = k;
        if (!r.ok()) return {check_result{id, severity::error, check_status::fail, failure(abs, k, r, prog)}, {}};
        last_output_ = last_json_line(r.out);
        std::string how = kind_ == runtime_kind::automatic ? " (auto)" : "";
        std::string ran_variants;
        for (const auto& [shown, variant] : variant_commands(k, abs, report, inv)) {
            auto [vr, vprog] = execute(variant);
            if (!vr.ok())
                return {check_result{id, severity::error, check_status::fail, failure(abs / shown, k, vr, vprog)}, {}};
            ran_variants += (ran_variants.empty() ? "; variants ran: " : ", ") + shown;
        }
        return {check_result{id, severity::error, check_status::pass,
                             "loaded and ran one inference" + how + ": " + summary(k, last_output_) + ran_variants,
                             metrics(last_output_)},
                {}};
    }

    /// Whether the script ended with its own verdict that the package failed.
    static bool said_error(const run_result& r, const std::string& prog) {
        return !r.last_err.empty() && r.last_err.back().rfind(prog + ": error: ", 0) == 0;
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
        // from_pretrained may hand a package to a model type's own class (ORTModelForPix2Struct for
        // ORTModelForVision2Seq).
        const json loaded = out.value("loaded_class", json()), asked = out.value("class", json());
        if (loaded.is_string() && asked.is_string() && loaded != asked)
            s += ", loaded by " + asked.get<std::string>() + " as " + loaded.get<std::string>();
        if (out.contains("outputs") && out["outputs"].is_object()) {
            s += "; outputs";
            for (const auto& [name, v] : out["outputs"].items())
                s += " " + name + (v.contains("shape") ? v["shape"].dump() : "");
        }
        if (out.contains("result")) s += "; result " + out["result"].dump().substr(0, 160);
        json m = metrics(out);
        if (m.contains("latency_ms"))
            s += "; median latency " + std::to_string(m["latency_ms"].get<double>()).substr(0, 6) + " ms";
        if (m.contains("peak_rss_mb")) s += ", peak RSS " + std::to_string(m["peak_rss_mb"].get<long long>()) + " MB";
        return s;
    }

    runtime_kind kind_;
    runtime_config cfg_;
    mutable json last_output_;
    mutable runtime_kind ran_ = runtime_kind::none;
};

// Out of the class so that a compiled build makes the runtime check's code once, in
// src/validate.cpp (detail/linkage.hpp).
#if MODELEXPORT_DEFINES(VALIDATE)
MODELEXPORT_ENTRY std::optional<check_result> runtime_check::operator()(const fs::path& dir,
                                                                        const validation_report& report) const {
    ran_ = runtime_kind::none;
    if (kind_ == runtime_kind::none) return std::nullopt;
    if (kind_ != runtime_kind::automatic) {
        attempt a = run(kind_, dir, report);
        if (a.result) return a.result;
        return check_result{"runtime." + to_string(kind_), severity::error, check_status::unavailable,
                            to_string(kind_) + " unavailable: " + a.unavailable};
    }
    std::string reasons;
    for (auto k : {runtime_kind::optimum, runtime_kind::onnxruntime, runtime_kind::transformers_js}) {
        attempt a = run(k, dir, report);
        if (a.result) return a.result;
        reasons += (reasons.empty() ? "" : "; ") + to_string(k) + ": " + a.unavailable;
    }
    return check_result{"runtime", severity::warning, check_status::skip, "no runtime available (auto): " + reasons};
}
#endif

}  // namespace modelexport
