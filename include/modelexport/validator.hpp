// modelexport/validator.hpp — does a package load for its task? (docs/design.md §5)
//
// Each check has a stable id, a severity and a message naming the file and the
// problem. A failed error-check makes the package invalid; a failed warning
// means it may not load everywhere, and `strict` makes that fatal too (what
// the build-time test() uses). The runtime check is a policy so the library
// does not depend on which runtimes a machine has (see runtime.hpp).
#pragma once

#include "modelexport/error.hpp"
#include "modelexport/file_roles.hpp"
#include "modelexport/json_file.hpp"
#include "modelexport/onnx_checks.hpp"
#include "modelexport/tasks.hpp"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace modelexport {

enum class severity { error, warning };
enum class check_status { pass, fail, skip };

struct check_result {
    std::string id;  ///< stable: "onnx.checker", "signature.outputs", ...
    severity level = severity::error;
    check_status status = check_status::pass;
    std::string message;
    json metrics = json::object();  ///< measurements (the runtime check's latency_ms, peak_rss_mb)
};

struct validation_report {
    fs::path package;
    std::string task;
    std::string optimum_class;
    std::optional<signature> sig;
    std::vector<check_result> checks;

    bool ok(bool strict) const {
        return std::none_of(checks.begin(), checks.end(), [&](const check_result& c) {
            return c.status == check_status::fail && (c.level == severity::error || strict);
        });
    }
    const check_result* find(const std::string& id) const {
        for (const auto& c : checks)
            if (c.id == id) return &c;
        return nullptr;
    }
};

struct validate_options {
    std::string task;  ///< empty: from config.json
};

/// A runtime check that runs nothing (`--runtime none`).
struct no_runtime {
    std::optional<check_result> operator()(const fs::path&, const validation_report&) const { return std::nullopt; }
};

inline std::string to_string(severity s) { return s == severity::error ? "error" : "warning"; }
inline std::string to_string(check_status s) { return s == check_status::pass ? "pass" : s == check_status::fail ? "fail" : "skip"; }

inline json to_json(const validation_report& r, bool strict) {
    json checks = json::array();
    for (const auto& c : r.checks) {
        json check{{"id", c.id}, {"severity", to_string(c.level)}, {"status", to_string(c.status)}, {"message", c.message}};
        check.update(c.metrics);
        checks.push_back(std::move(check));
    }
    return {{"package", r.package.string()},
            {"task", r.task},
            {"optimum_class", r.optimum_class},
            {"signature", r.sig ? to_json(*r.sig) : json(nullptr)},
            {"checks", checks},
            {"strict", strict},
            {"ok", r.ok(strict)}};
}

namespace detail {

class report_builder {
public:
    explicit report_builder(validation_report& r) : r_(r) {}
    void pass(const std::string& id, severity s, const std::string& msg = "ok") { add(id, s, check_status::pass, msg); }
    void fail(const std::string& id, severity s, const std::string& msg) { add(id, s, check_status::fail, msg); }
    void skip(const std::string& id, severity s, const std::string& msg) { add(id, s, check_status::skip, msg); }

private:
    void add(const std::string& id, severity s, check_status st, const std::string& msg) { r_.checks.push_back({id, s, st, msg}); }
    validation_report& r_;
};

inline std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

inline void check_signature(report_builder& b, const task_info& task, const signature& sig, const std::string& model_name) {
    auto has = [](const std::vector<tensor_info>& v, std::string_view n) {
        return std::any_of(v.begin(), v.end(), [&](const tensor_info& t) { return t.name == n; });
    };
    std::vector<std::string> missing_in, unexpected_in, missing_out;
    for (auto n : task.inputs)
        if (!has(sig.inputs, n)) missing_in.emplace_back(n);
    for (const auto& in : sig.inputs) {
        bool known = std::find(task.inputs.begin(), task.inputs.end(), in.name) != task.inputs.end() ||
                     std::find(task.optional_inputs.begin(), task.optional_inputs.end(), in.name) != task.optional_inputs.end();
        if (!known) unexpected_in.push_back(in.name);
    }
    for (auto n : task.outputs)
        if (!has(sig.outputs, n)) missing_out.emplace_back(n);
    std::string cls(task.optimum_class);
    if (missing_in.empty() && unexpected_in.empty()) b.pass("signature.inputs", severity::error);
    else
        b.fail("signature.inputs", severity::error,
               model_name + ": " + (missing_in.empty() ? "" : "missing input(s) " + join(missing_in) + " that " + cls + " feeds") +
                   (missing_in.empty() || unexpected_in.empty() ? "" : "; ") +
                   (unexpected_in.empty() ? "" : "input(s) " + join(unexpected_in) + " that " + cls + " cannot provide"));
    if (missing_out.empty()) b.pass("signature.outputs", severity::error);
    else b.fail("signature.outputs", severity::error, model_name + ": missing output(s) " + join(missing_out) + " that " + cls + " reads");
}

inline void check_preprocessing(report_builder& b, const task_info& task, const fs::path& dir) {
    auto present = [&](const char* n) { return fs::is_regular_file(dir / n); };
    if (task.kind == modality::text) {
        bool tok = present("tokenizer.json") || present("vocab.txt") || present("vocab.json") || present("spiece.model") ||
                   present("tokenizer.model") || present("sentencepiece.bpe.model");
        if (tok) b.pass("preprocessing.tokenizer", severity::warning);
        else b.fail("preprocessing.tokenizer", severity::warning, (dir / "tokenizer.json").string() + ": missing; a " + std::string(task.name) + " pipeline needs the model's tokenizer");
    } else {
        bool proc = present("preprocessor_config.json") || present("image_processor_config.json") || present("feature_extractor_config.json");
        if (proc) b.pass("preprocessing.processor", severity::warning);
        else b.fail("preprocessing.processor", severity::warning, (dir / "preprocessor_config.json").string() + ": missing; a " + std::string(task.name) + " pipeline needs it");
    }
}

inline void check_labels(report_builder& b, const task_info& task, const signature& sig, const json& config, const fs::path& config_path) {
    const tensor_info* logits = sig.output("logits");
    bool classifier = task.name == "text-classification" || task.name == "token-classification" || task.name == "image-classification" ||
                      task.name == "audio-classification" || task.name == "object-detection";
    if (!classifier || !logits || !config.contains("id2label") || !config["id2label"].is_object()) {
        b.skip("labels.width", severity::warning, "no id2label or no classifier output");
        return;
    }
    std::int64_t width = logits->fixed_dim(logits->shape.empty() ? 0 : logits->shape.size() - 1);
    auto labels = static_cast<std::int64_t>(config["id2label"].size());
    // DETR/YOLOS add one "no object" class to the logits.
    std::int64_t expected = task.name == "object-detection" ? labels + 1 : labels;
    if (width < 0) b.skip("labels.width", severity::warning, "classifier width is symbolic");
    else if (width == expected) b.pass("labels.width", severity::warning);
    else
        b.fail("labels.width", severity::warning,
               config_path.string() + ": id2label has " + std::to_string(labels) + " labels but logits has width " + std::to_string(width));
}

}  // namespace detail

/// Validates the package in `dir`. Never throws for problems of the package:
/// they become failed checks.
template <class Runtime = no_runtime>
validation_report validate_package(const fs::path& dir, const validate_options& opt = {}, Runtime&& runtime = Runtime{}) {
    validation_report r;
    r.package = dir;
    detail::report_builder b(r);
    const fs::path model_path = dir / "model.onnx", config_path = dir / "config.json";

    std::vector<std::string> missing;
    for (const auto& f : package_files)
        if (f.required && !fs::is_regular_file(dir / std::string(f.name))) {
            std::string why = regular_file_problem(dir / std::string(f.name));  // "missing", or what it is instead
            missing.emplace_back(std::string(f.name) + (why == "missing" ? "" : " (" + why + ")"));
        }
    if (missing.empty()) b.pass("package.files", severity::error);
    else b.fail("package.files", severity::error, dir.string() + ": missing required file(s) " + detail::join(missing));

    // The graph without its inline weights: validating must not hold the weights in memory.
    std::optional<light_model> model;
    if (!fs::is_regular_file(model_path)) {
        b.skip("onnx.parse", severity::error, model_path.string() + ": " + regular_file_problem(model_path));
    } else {
        try {
            model = load_onnx_light(model_path);
            b.pass("onnx.parse", severity::error);
        } catch (const error& e) {
            b.fail("onnx.parse", severity::error, e.what());
        }
    }
    if (model) {
        onnx_verdict v = check_onnx(*model, dir);
        if (v.external_data.empty()) b.pass("onnx.external_data", severity::error);
        else b.fail("onnx.external_data", severity::error, model_path.string() + ": " + v.external_data);
        if (!v.checker) b.skip("onnx.checker", severity::error, model_path.string() + ": not run: the external data is unsafe to read");
        else if (v.checker->empty()) b.pass("onnx.checker", severity::error);
        else b.fail("onnx.checker", severity::error, model_path.string() + ": " + *v.checker);
        r.sig = graph_signature(model->model.graph());
        model.reset();
    }

    std::optional<json> config;
    try {
        if (!fs::is_regular_file(config_path)) throw config_missing(config_path.string(), "missing; Optimum cannot infer the model without it");
        config = read_json_object(config_path);
        b.pass("config.parse", severity::error);
    } catch (const error& e) {
        b.fail("config.parse", severity::error, e.what());
    }
    if (config) {
        auto mt = config->find("model_type");
        if (mt != config->end() && mt->is_string() && !mt->get<std::string>().empty()) b.pass("config.model_type", severity::error);
        else b.fail("config.model_type", severity::error, config_path.string() + ": no \"model_type\" string");
    }

    const task_info* task = nullptr;
    if (!opt.task.empty()) task = find_task(opt.task);
    else if (config) task = task_for_config(*config);
    if (task) {
        r.task = std::string(task->name);
        r.optimum_class = std::string(task->optimum_class);
        b.pass("task.known", severity::error, r.task + " (" + r.optimum_class + ")");
    } else {
        b.fail("task.known", severity::error,
               opt.task.empty() ? config_path.string() + ": cannot infer the task from \"architectures\"; pass --task"
                                : "unknown task '" + opt.task + "'; known: " + task_names());
    }
    if (task && r.sig) detail::check_signature(b, *task, *r.sig, model_path.string());
    if (task) detail::check_preprocessing(b, *task, dir);
    if (task && r.sig && config) detail::check_labels(b, *task, *r.sig, *config, config_path);

    if (r.ok(false))
        if (auto rc = runtime(dir, r)) r.checks.push_back(*rc);
    return r;
}

}  // namespace modelexport
