// modelexport/validator.hpp — does a package load for its task? (docs/design.md §5)
//
// Each check has a stable id, a severity and a message naming the file and the
// problem. A failed error-check makes the package invalid; a failed warning
// means it may not load everywhere, and `strict` makes that fatal too (what
// the build-time test() uses). The runtime check is a policy so the library
// does not depend on which runtimes a machine has (see validate/runtime.hpp).
#pragma once

#include "modelexport/detail/json_file.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/error.hpp"
#include "modelexport/export/sentence_pipeline.hpp"
#include "modelexport/onnx/checks.hpp"
#include "modelexport/package/contents.hpp"
#include "modelexport/package/file_roles.hpp"
#include "modelexport/package/layout.hpp"
#include "modelexport/package/reader.hpp"
#include "modelexport/package/variant_names.hpp"
#include "modelexport/tasks.hpp"
#include "modelexport/validate/decoder_checks.hpp"
#include "modelexport/validate/seq2seq_checks.hpp"
#include "modelexport/validate/tokenizer_ids.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace modelexport {

enum class severity { error, warning };
/// `unavailable`: the check could not run here (its runtime cannot start); it says nothing about
/// the package, so it never makes a report fail (the CLI gives it its own exit code).
enum class check_status { pass, fail, skip, unavailable };

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
    const task_info* row = nullptr;  ///< the task's row for this package's model (a shared name has two)
    std::optional<signature> sig;
    package_layout layout = package_layout::flat;
    std::string model = "model.onnx";  ///< the primary ONNX file, package-relative ("onnx/model.onnx" in hub)
    std::vector<check_result> checks;

    bool ok(bool strict) const {
        return std::none_of(checks.begin(), checks.end(), [&](const check_result& c) {
            return c.status == check_status::fail && (c.level == severity::error || strict);
        });
    }
    /// The first check that could not run, or nullptr.
    const check_result* unavailable() const {
        for (const auto& c : checks)
            if (c.status == check_status::unavailable) return &c;
        return nullptr;
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
inline std::string to_string(check_status s) {
    switch (s) {
        case check_status::pass:
            return "pass";
        case check_status::fail:
            return "fail";
        case check_status::skip:
            return "skip";
        default:
            return "unavailable";
    }
}

inline json to_json(const validation_report& r, bool strict) {
    json checks = json::array();
    for (const auto& c : r.checks) {
        json check{
            {"id", c.id}, {"severity", to_string(c.level)}, {"status", to_string(c.status)}, {"message", c.message}};
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
    void add(const std::string& id, severity s, check_status st, const std::string& msg) {
        r_.checks.push_back({id, s, st, msg});
    }
    validation_report& r_;
};

inline std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

inline void check_signature(report_builder& b, const task_info& task, const signature& sig,
                            const std::string& model_name) {
    std::vector<std::string> missing_in, unexpected_in, missing_out;
    for (auto n : task.inputs)
        if (!task.takes_required(n, takes_input(sig))) missing_in.emplace_back(n);
    for (const auto& in : sig.inputs) {
        bool known = std::find(task.inputs.begin(), task.inputs.end(), in.name) != task.inputs.end() ||
                     std::find(task.optional_inputs.begin(), task.optional_inputs.end(), in.name) !=
                         task.optional_inputs.end() ||
                     task.is_alternative_input(in.name) ||
                     (task.with_past && is_cache_input(in.name, task.cache));  // checked by check_cache
        if (!known) unexpected_in.push_back(in.name);
    }
    for (auto n : task.outputs)
        if (!sig.output(std::string(n))) missing_out.emplace_back(n);
    std::string cls(task.optimum_class);
    if (missing_in.empty() && unexpected_in.empty())
        b.pass("signature.inputs", severity::error);
    else
        b.fail(
            "signature.inputs", severity::error,
            model_name + ": " +
                (missing_in.empty() ? "" : "missing input(s) " + join(missing_in) + " that " + cls + " feeds") +
                (missing_in.empty() || unexpected_in.empty() ? "" : "; ") +
                (unexpected_in.empty() ? "" : "input(s) " + join(unexpected_in) + " that " + cls + " cannot provide"));
    if (missing_out.empty())
        b.pass("signature.outputs", severity::error);
    else
        b.fail("signature.outputs", severity::error,
               model_name + ": missing output(s) " + join(missing_out) + " that " + cls + " reads");
}

/// task.recorded: the task export_metadata.json records (model.task) is what tools and people
/// read (inspect, bindings, audits), so it must agree with the head config.json names and with
/// the graph (docs/design.md §5.3). A package without metadata (not made by modelexport) skips it.
inline void check_recorded_task(report_builder& b, const fs::path& dir, const std::optional<signature>& sig,
                                const std::optional<json>& config, const std::string& primary) {
    const fs::path meta_path = dir / "export_metadata.json";
    if (!fs::is_regular_file(meta_path))
        return b.skip("task.recorded", severity::error, meta_path.string() + ": missing");
    std::string recorded;
    try {
        recorded = recorded_model_task(read_export_metadata(meta_path));
    } catch (const error& e) {
        return b.fail("task.recorded", severity::error, e.what());
    }
    if (std::string problem =
            recorded_task_problem(recorded, config ? &*config : nullptr, sig ? &*sig : nullptr, primary);
        !problem.empty())
        return b.fail("task.recorded", severity::error, meta_path.string() + ": " + problem);
    b.pass("task.recorded", severity::error, recorded);
}

/// What an audio feature extractor's config lacks for a pipeline to prepare waveforms, or "".
inline std::string feature_extractor_problem(const json& pre) {
    auto type = pre.find("feature_extractor_type");
    if (type == pre.end() || !type->is_string() || type->get<std::string>().empty())
        return "no \"feature_extractor_type\" string";
    auto rate = pre.find("sampling_rate");
    if (rate == pre.end() || !rate->is_number_integer() || rate->get<std::int64_t>() <= 0)
        return "no positive integer \"sampling_rate\"";
    // Wav2Vec2 models were trained on zero-mean unit-variance waveforms, or not: the flag must say which.
    auto norm = pre.find("do_normalize");
    if (norm != pre.end() && !norm->is_boolean()) return "\"do_normalize\" is not a boolean";
    return "";
}

/// config.json names a model type transformers knows: Optimum's ORTModel and transformers.js read
/// the config through it, and refuse any other (custom code in auto_map loads only when trusted).
inline void check_known_model_type(report_builder& b, const json& config, const fs::path& config_path) {
    const std::string type = config["model_type"].get<std::string>();
    if (is_known_model_type(type)) {
        b.pass("config.model_type_known", severity::warning);
        return;
    }
    b.fail("config.model_type_known", severity::warning,
           config_path.string() + ": model_type \"" + printable(type) + "\" is not a model type transformers knows; " +
               (config.contains("auto_map")
                    ? "Optimum loads its custom code (auto_map) only with trust_remote_code, transformers.js not at all"
                    : "Optimum and transformers.js cannot load this package"));
}

/// Audio packages: preprocessor_config.json describes a feature extractor (type, rate, normalisation).
inline void check_feature_extractor(report_builder& b, const fs::path& dir) {
    const fs::path path = dir / "preprocessor_config.json";
    if (!fs::is_regular_file(path)) {
        b.skip("preprocessing.feature_extractor", severity::warning, path.string() + ": missing");
        return;
    }
    std::string problem;
    try {
        problem = feature_extractor_problem(read_json_object(path));
    } catch (const error& e) {
        problem = e.what();
    }
    if (problem.empty())
        b.pass("preprocessing.feature_extractor", severity::warning);
    else
        b.fail("preprocessing.feature_extractor", severity::warning, path.string() + ": " + problem);
}

inline void check_preprocessing(report_builder& b, const task_info& task, const fs::path& dir,
                                const std::optional<signature>& sig) {
    if (task.kind == modality::time_series || task.kind == modality::trajectory)
        return b.pass("preprocessing.processor", severity::warning, "none needed: the inputs are raw numbers");
    auto present = [&](const char* n) { return fs::is_regular_file(dir / n); };
    // A task of several modalities (feature-extraction of ViT, of Wav2Vec2): the graph's inputs tell which.
    const bool text = sig ? sig->input("input_ids") != nullptr : task.kind == modality::text;
    if (text) {
        bool tok = present("tokenizer.json") || present("vocab.txt") || present("vocab.json") ||
                   present("spiece.model") || present("tokenizer.model") || present("sentencepiece.bpe.model");
        if (tok)
            b.pass("preprocessing.tokenizer", severity::warning);
        else
            b.fail("preprocessing.tokenizer", severity::warning,
                   (dir / "tokenizer.json").string() + ": missing; a " + std::string(task.name) +
                       " pipeline needs the model's tokenizer");
    } else {
        bool proc = present("preprocessor_config.json") || present("image_processor_config.json") ||
                    present("feature_extractor_config.json");
        if (proc)
            b.pass("preprocessing.processor", severity::warning);
        else
            b.fail("preprocessing.processor", severity::warning,
                   (dir / "preprocessor_config.json").string() + ": missing; a " + std::string(task.name) +
                       " pipeline needs it");
    }
    if (task.kind == modality::audio) check_feature_extractor(b, dir);
    // CTC packages decode ids with the model's character vocabulary.
    if (task.kind != modality::text && task.needs_tokenizer && !fs::is_regular_file(dir / "tokenizer.json") &&
        !fs::is_regular_file(dir / "vocab.json"))
        b.fail(
            "preprocessing.tokenizer", severity::warning,
            (dir / "tokenizer.json").string() + ": missing; CTC ids cannot be decoded to text without the vocabulary");
}

inline void check_labels(report_builder& b, const task_info& task, const signature& sig, const json& config,
                         const fs::path& config_path) {
    const tensor_info* logits = sig.output("logits");
    if (!task.labels || !logits || !config.contains("id2label") || !config["id2label"].is_object()) {
        b.skip("labels.width", severity::warning, "no id2label or no classifier output");
        return;
    }
    std::int64_t width = logits->fixed_dim(logits->shape.empty() ? 0 : logits->shape.size() - 1);
    auto labels = static_cast<std::int64_t>(config["id2label"].size());
    std::int64_t expected = labels + task.labels_extra;  // DETR/YOLOS add one "no object" class to the logits

    if (width < 0)
        b.skip("labels.width", severity::warning, "classifier width is symbolic");
    else if (width == expected)
        b.pass("labels.width", severity::warning);
    else
        b.fail("labels.width", severity::warning,
               config_path.string() + ": id2label has " + std::to_string(labels) + " labels but logits has width " +
                   std::to_string(width));
}

/// Decoders: the cache against config.json, and the token ids generation needs.
inline void check_cache(report_builder& b, const task_info& task, const signature& sig, const json& config,
                        const fs::path& dir, const std::string& model_name) {
    if (!task.with_past) return;
    if (auto problem = cache_problem(sig, config, task.cache); problem.empty())
        b.pass("signature.cache", severity::error);
    else
        b.fail("signature.cache", severity::error, model_name + ": " + problem);
    if (auto problem = transformers_js_cache_problem(config, task.cache); problem.empty())
        b.pass("signature.transformers_js_cache", severity::warning);
    else
        b.fail("signature.transformers_js_cache", severity::warning, (dir / "config.json").string() + ": " + problem);
    if (has_generation_settings(dir, config))
        b.pass("generation.config", severity::warning);
    else
        b.fail("generation.config", severity::warning,
               (dir / "generation_config.json").string() +
                   ": missing, and config.json has no eos_token_id; generate() cannot stop");
}

/// What the checks after check_model_file need of one ONNX file that parses.
struct model_file_facts {
    signature sig;
    id_embedding ids;
};

/// onnx.parse, onnx.external_data, onnx.checker of one ONNX file; its facts when it parses.
inline std::optional<model_file_facts> check_model_file(report_builder& b, const fs::path& model_path) {
    std::optional<light_model> model;  // the graph without its inline weights
    if (!fs::is_regular_file(model_path)) {
        b.skip("onnx.parse", severity::error, model_path.string() + ": " + regular_file_problem(model_path));
        return std::nullopt;
    }
    try {
        model = load_onnx_light(model_path);
        b.pass("onnx.parse", severity::error);
    } catch (const error& e) {
        b.fail("onnx.parse", severity::error, e.what());
        return std::nullopt;
    }
    onnx_verdict v =
        check_onnx(*model, model_path.parent_path());  // external data is read beside the model (onnx/ in hub)
    if (v.external_data.empty())
        b.pass("onnx.external_data", severity::error);
    else
        b.fail("onnx.external_data", severity::error, model_path.string() + ": " + v.external_data);
    if (!v.checker)
        b.skip("onnx.checker", severity::error, model_path.string() + ": not run: the external data is unsafe to read");
    else if (v.checker->empty())
        b.pass("onnx.checker", severity::error);
    else
        b.fail("onnx.checker", severity::error, model_path.string() + ": " + *v.checker);
    return model_file_facts{graph_signature(model->model.graph()), find_id_embedding(model->model.graph())};
}

/// The names and element types of a signature's inputs and outputs, "name:type" each.
inline std::vector<std::string> io_types(const signature& sig) {
    std::vector<std::string> out;
    for (const auto* side : {&sig.inputs, &sig.outputs})
        for (const auto& t : *side) out.push_back(t.name + ":" + t.elem_type);
    return out;
}

/// The problem of one variant file `name` made of the package's ONNX file `of` ("" when none): an ONNX
/// variant parses, passes the checker and takes and gives the tensors `of` does (its loaders feed it
/// alike: fp16 keeps fp32 inputs and outputs); an ORT-format file carries ONNX Runtime's identifier.
inline std::string variant_problem(const fs::path& path, const signature& of) {
    if (path.extension() == ".ort") {
        char head[8] = {};
        unique_fd fd = open_or_throw(path, O_RDONLY);  // a FIFO or device is refused, never waited on
        bool ort = ::pread(fd.get(), head, sizeof head, 0) == static_cast<ssize_t>(sizeof head) &&
                   std::string(head + 4, 4) == "ORTM";
        return ort ? "" : "is not an ORT-format model (no ORTM flatbuffer identifier)";
    }
    light_model model = load_onnx_light(path);
    onnx_verdict v = check_onnx(model, path.parent_path());
    if (!v.external_data.empty()) return v.external_data;
    if (v.checker && !v.checker->empty()) return *v.checker;
    if (io_types(graph_signature(model.model.graph())) != io_types(of))
        return "takes or gives other tensors than the file it was made of";
    return "";
}

/// variants.files, only for a package holding variant files (export --variants): each one's problem.
inline void check_variants(report_builder& b, const fs::path& dir, package_layout layout,
                           const std::map<std::string, signature>& sigs) {
    std::vector<std::string> problems, found;
    bool ort = false, operators = false;
    // A variant where the other layout keeps it is one no client of this package looks for.
    const package_layout other = layout == package_layout::flat ? package_layout::hub : package_layout::flat;
    auto misplaced = [&](const std::string& file) {
        if (!fs::exists(fs::symlink_status(dir / layout_path(other, file)))) return;
        found.push_back(layout_path(other, file));
        problems.push_back((dir / layout_path(other, file)).string() + ": a variant where the " + to_string(other) +
                           " layout keeps it, but the package's model files are " + to_string(layout) +
                           ": clients look for it at " + layout_path(layout, file));
    };
    for (const auto& [name, sig] : sigs)
        for (const auto& kind : variant_kinds) {
            const std::string file = variant_file_name(name, std::string(kind.name));
            const fs::path path = dir / layout_path(layout, file);
            misplaced(file);
            if (!fs::is_regular_file(path)) continue;
            found.push_back(file);
            ort = ort || kind.name == ort_variant;
            try {
                if (std::string problem = variant_problem(path, sig); !problem.empty())
                    problems.push_back(path.string() + ": " + problem);
            } catch (const error& e) {
                problems.push_back(e.what());
            }
        }
    misplaced(std::string(ort_operators_file));
    operators = fs::is_regular_file(dir / layout_path(layout, ort_operators_file));
    if (ort && !operators)
        problems.push_back(layout_path(layout, ort_operators_file) + " is missing beside the ORT-format models");
    if (found.empty() && !operators) return;
    if (problems.empty())
        b.pass("variants.files", severity::error, join(found));
    else
        b.fail("variants.files", severity::error,
               problems.front() + (problems.size() > 1 ? " (" + std::to_string(problems.size() - 1) + " more)" : ""));
}

/// An encoder-decoder package: each file's role signature, then the cross-file contract (validate/seq2seq_checks.hpp).
inline void check_seq2seq(report_builder& b, const fs::path& dir, package_layout layout,
                          const std::map<std::string, signature>& sigs, const json& config, const task_info& task) {
    const bool cached = decodes_with_cache(task);
    for (const auto& [name, sig] : sigs)
        if (auto problem = seq2seq_file_problem(name, sig, cached, task.encoder_decoder.decoder_output);
            !problem.empty())
            return b.fail("signature.files", severity::error,
                          (dir / layout_path(layout, name)).string() + ": " + problem);
    b.pass("signature.files", severity::error);
    if (auto problem = seq2seq_contract_problem(sigs, config, cached, std::string(task.encoder_decoder.files.front()));
        problem.empty())
        b.pass("signature.encoder_decoder", severity::error);
    else
        b.fail("signature.encoder_decoder", severity::error, dir.string() + ": " + problem);
}

/// tokenizer.ids: the largest id the tokenizer files and the configs can feed the model is
/// below the embedding rows of every ONNX file that takes ids (validate/tokenizer_ids.hpp). In a package of
/// several files the tokenizer feeds the primary file (the encoder) alone; a decoder reads the ids it generates
/// and the configs' special ids (MusicGen's decoder takes audio codes, from a vocabulary of its own). A
/// warning: the graph loads, and fails only on the text that produces such an id.
inline void check_token_ids(report_builder& b, const fs::path& dir, package_layout layout,
                            const std::vector<std::string>& models,
                            const std::map<std::string, id_embedding>& embeddings, const std::optional<json>& config) {
    const char* id = "tokenizer.ids";
    std::vector<std::string> takes_ids;
    for (const auto& name : models)
        if (auto e = embeddings.find(name); e != embeddings.end() && !e->second.input.empty())
            takes_ids.push_back(name);
    if (takes_ids.empty()) return;
    std::vector<token_id> tokenizer, special;
    try {
        tokenizer = tokenizer_ids(dir);
        auto append = [&](const std::vector<token_id>& more) {
            special.insert(special.end(), more.begin(), more.end());
        };
        if (config) append(special_ids(*config, (dir / "config.json").string()));
        if (const fs::path generation = dir / "generation_config.json"; fs::is_regular_file(generation))
            append(special_ids(read_json_object(generation), generation.string()));
    } catch (const error& e) {
        return b.fail(id, severity::warning, e.what());
    }
    if (tokenizer.empty() && special.empty())
        return b.skip(id, severity::warning,
                      dir.string() + ": not run: no tokenizer file and no token id in the configs");
    const bool encoder_decoder = models.size() > 1;
    std::vector<std::string> fits, unknown;
    std::optional<token_id> largest_fed;
    for (const auto& name : takes_ids) {
        const bool encoder = encoder_decoder && name == models.front();
        const id_embedding& e = embeddings.at(name);
        // A file beside the encoder that indexes nothing with its ids (MusicGen's delay-pattern builder) embeds none.
        if (encoder_decoder && !encoder && !e.indexes) continue;
        std::vector<token_id> fed = special;
        if (!encoder_decoder || encoder) fed.insert(fed.end(), tokenizer.begin(), tokenizer.end());
        if (fed.empty()) continue;
        const token_id& largest =
            *std::max_element(fed.begin(), fed.end(), [](const token_id& a, const token_id& c) { return a.id < c.id; });
        if (!largest_fed || largest.id > largest_fed->id) largest_fed = largest;
        const std::string file = layout_path(layout, name);
        std::int64_t rows = -1;
        std::string source;
        if (e.rows) {
            rows = *e.rows;
            source = file + ", Gather of " + e.input;
        } else if (config) {
            stated_vocab v = config_vocab_size(*config, encoder_decoder && !encoder, encoder);
            rows = v.size;
            source = "config.json " + v.key + ", for " + file;
        }
        if (rows < 0) {
            unknown.push_back(file);
            continue;
        }
        if (largest.id >= rows)
            return b.fail(id, severity::warning,
                          largest.file + ": " + largest.describe() + " but the model's embedding (" + source +
                              ") has " + std::to_string(rows) + " rows");
        fits.push_back(file + " " + std::to_string(rows) + " rows");
    }
    const std::string not_known =
        "no Gather of the ids reads an embedding initializer and config.json states no vocab_size";
    if (fits.empty())
        return b.skip(id, severity::warning,
                      (dir / layout_path(layout, takes_ids.front())).string() + ": not run: " + not_known);
    b.pass(id, severity::warning,
           "largest id " + std::to_string(largest_fed->id) + " (" + fs::path(largest_fed->file).filename().string() +
               ") fits " + join(fits) +
               (unknown.empty() ? "" : "; not checked: " + join(unknown) + " (" + not_known + ")"));
}

/// recipe.max_seq_length: a sentence-transformers recipe cuts inputs at sentence_bert_config.json's
/// max_seq_length; a length past config.json's max_position_embeddings feeds positions the graph's
/// position table does not have. A warning, as tokenizer.ids: only long inputs fail.
inline void check_recipe_length(report_builder& b, const fs::path& dir, const std::optional<json>& config) {
    const char* id = "recipe.max_seq_length";
    const fs::path recipe = dir / "sentence_bert_config.json";
    if (!fs::is_regular_file(recipe)) return;
    json r;
    try {
        r = read_json_object(recipe);
    } catch (const error& e) {
        return b.fail(id, severity::warning, e.what());
    }
    auto length = r.find("max_seq_length");
    if (length == r.end() || length->is_null())
        return b.skip(id, severity::warning, recipe.string() + ": not run: no max_seq_length");
    if (!length->is_number_integer() || length->get<std::int64_t>() <= 0)
        return b.fail(id, severity::warning, recipe.string() + ": max_seq_length is not a positive integer");
    const std::int64_t n = length->get<std::int64_t>();
    const json positions = config ? config->value("max_position_embeddings", json()) : json();
    if (!positions.is_number_integer())
        return b.skip(id, severity::warning,
                      recipe.string() + ": not run: config.json states no max_position_embeddings");
    const std::int64_t rows = positions.get<std::int64_t>();
    if (n > rows)
        return b.fail(id, severity::warning,
                      recipe.string() + ": max_seq_length " + std::to_string(n) +
                          " exceeds config.json's max_position_embeddings " + std::to_string(rows) +
                          ": inputs that long index past the model's position embedding");
    b.pass(id, severity::warning,
           "max_seq_length " + std::to_string(n) + " fits max_position_embeddings " + std::to_string(rows));
}

/// The module classes after the transformer that a modules.json lists ("Pooling", "Normalize"), by the
/// last part of each "type" (sentence_transformers.models.Pooling).
inline std::vector<std::string> recipe_modules(const fs::path& modules_json) {
    json list = read_json_file(modules_json);
    if (!list.is_array() || list.empty()) throw invalid_input(modules_json.string(), "not a list of modules");
    std::vector<std::string> out;
    for (std::size_t i = 1; i < list.size(); ++i) {
        const json* type_field = list[i].is_object() && list[i].contains("type") ? &list[i]["type"] : nullptr;
        std::string type = type_field && type_field->is_string() ? type_field->get<std::string>() : "";
        out.push_back(type.substr(type.rfind('.') == std::string::npos ? 0 : type.rfind('.') + 1));
    }
    return out;
}

/// recipe.pooling: a graph with a sentence_embedding output (export --library sentence-transformers)
/// computes the modules export_metadata.json records; they must be the ones the package's modules.json
/// lists (what sentence-transformers users of the same checkpoint get), and the output as wide as recorded.
inline void check_recipe_pooling(report_builder& b, const fs::path& dir, const std::optional<signature>& sig) {
    const char* id = "recipe.pooling";
    const tensor_info* out = sig ? sig->output("sentence_embedding") : nullptr;
    const fs::path meta_path = dir / "export_metadata.json", modules_path = dir / "modules.json";
    sentence_pipeline recorded;
    try {
        if (fs::is_regular_file(meta_path))
            recorded = sentence_pipeline::from_json(read_export_metadata(meta_path).value("model", json::object()));
    } catch (const std::exception& e) {
        return b.fail(id, severity::error, meta_path.string() + ": model." + std::string(e.what()));
    }
    if (!out && recorded.empty()) return;
    if (!out)
        return b.fail(id, severity::error,
                      meta_path.string() +
                          ": records a sentence-transformers pipeline, but the graph has no sentence_embedding output");
    if (recorded.empty())
        return b.skip(
            id, severity::warning,
            "not run: " + meta_path.string() + " records no sentence-transformers pipeline for sentence_embedding");
    if (!fs::is_regular_file(modules_path))
        return b.fail(
            id, severity::error,
            modules_path.string() + ": missing: nothing in the package says how sentence_embedding was pooled");
    std::vector<std::string> listed;
    try {
        listed = recipe_modules(modules_path);
    } catch (const std::exception& e) {
        return b.fail(id, severity::error, e.what());
    }
    if (listed != recorded.modules)
        return b.fail(id, severity::error,
                      modules_path.string() + ": lists " + join(listed) +
                          " after the transformer, but sentence_embedding computes " + join(recorded.modules) +
                          " (export_metadata.json)");
    const std::int64_t width = out->fixed_dim(out->shape.size() ? out->shape.size() - 1 : 0);
    if (width >= 0 && width != recorded.dimension)
        return b.fail(id, severity::error,
                      "sentence_embedding is " + std::to_string(width) + " wide, but export_metadata.json records " +
                          std::to_string(recorded.dimension));
    b.pass(id, severity::error,
           join(recorded.modules) + (recorded.pooling.empty() ? "" : " (" + join(recorded.pooling) + ")") + ", " +
               std::to_string(recorded.dimension) + " wide");
}

}  // namespace detail

/// Every check of the package in `dir` that needs no runtime. Never throws for problems of the
/// package: they become failed checks.
MODELEXPORT_ENTRY validation_report check_package(const fs::path& dir, const validate_options& opt);

/// Validates the package in `dir`: check_package, then `runtime` when every error-level check passed.
/// Never throws for problems of the package: they become failed checks.
template <class Runtime = no_runtime>
validation_report validate_package(const fs::path& dir, const validate_options& opt = {},
                                   Runtime&& runtime = Runtime{}) {
    validation_report r = check_package(dir, opt);
    if (r.ok(false))
        if (auto rc = runtime(dir, r)) r.checks.push_back(*rc);
    return r;
}

#if MODELEXPORT_DEFINES(VALIDATE)
MODELEXPORT_ENTRY validation_report check_package(const fs::path& dir, const validate_options& opt) {
    validation_report r;
    r.package = dir;
    detail::report_builder b(r);
    // package.entries: every package file is a regular file inside the package, as for every
    // reader (package/reader.hpp); a link out or a FIFO would be parsed from elsewhere or block.
    try {
        open_package(dir);
        b.pass("package.entries", severity::error);
    } catch (const error& e) {
        b.fail("package.entries", severity::error, e.what());
        return r;
    }
    // package.layout: where the ONNX files are (package/layout.hpp); the same model at the root and under
    // onnx/ fails here, naming both, and the rest is checked at the root.
    try {
        r.layout = find_layout(dir);
        b.pass("package.layout", severity::error, to_string(r.layout));
    } catch (const error& e) {
        b.fail("package.layout", severity::error, e.what());
    }
    const task_info* task = package_task(dir, opt.task);
    const std::vector<std::string> models = package_models(task);
    r.model = layout_path(r.layout, models.front());
    const fs::path model_path = dir / r.model, config_path = dir / "config.json";

    // A package without export_metadata.json (not made by modelexport) is still checked: loadable, not exported.
    if (auto missing = missing_package_files(dir, r.layout, models, package_need::loadable); missing.empty())
        b.pass("package.files", severity::error);
    else
        b.fail("package.files", severity::error, dir.string() + ": " + missing_files_problem(missing));

    std::map<std::string, signature> sigs;
    std::map<std::string, id_embedding> embeddings;
    for (const auto& name : models)
        if (auto facts = detail::check_model_file(b, dir / layout_path(r.layout, name))) {
            sigs[name] = facts->sig;
            embeddings[name] = facts->ids;
        }
    if (sigs.count(models.front())) r.sig = sigs[models.front()];

    std::optional<json> config;
    try {
        if (!fs::is_regular_file(config_path))
            throw config_missing(config_path.string(), "missing; Optimum cannot infer the model without it");
        config = read_json_object(config_path);
        b.pass("config.parse", severity::error);
    } catch (const error& e) {
        b.fail("config.parse", severity::error, e.what());
    }
    if (config) {
        if (std::string problem = config_problem(*config); problem.empty()) {
            b.pass("config.model_type", severity::error);
            detail::check_known_model_type(b, *config, config_path);
        } else {
            b.fail("config.model_type", severity::error, config_path.string() + ": " + problem);
        }
    }

    if (task) {
        r.task = std::string(task->name);
        r.row = task;
        r.optimum_class = std::string(task->optimum_class);
        b.pass("task.known", severity::error, r.task + " (" + r.optimum_class + ")");
    } else {
        b.fail("task.known", severity::error,
               opt.task.empty()
                   ? config_path.string() + ": cannot infer the task from \"architectures\" (" +
                         (config ? architectures_hint(*config) : std::string("no config")) + "); pass --task"
                   : unknown_task_message(opt.task, config ? &*config : nullptr));
    }
    if (task && r.sig) detail::check_signature(b, *task, *r.sig, model_path.string());
    detail::check_recorded_task(b, dir, r.sig, config, models.front());
    if (task) detail::check_preprocessing(b, *task, dir, r.sig);
    if (task && r.sig && config) detail::check_labels(b, *task, *r.sig, *config, config_path);
    if (task && r.sig && config) detail::check_cache(b, *task, *r.sig, *config, dir, model_path.string());
    if (task && !task->encoder_decoder.empty() && config && sigs.size() == models.size())
        detail::check_seq2seq(b, dir, r.layout, sigs, *config, *task);
    detail::check_token_ids(b, dir, r.layout, models, embeddings, config);
    detail::check_variants(b, dir, r.layout, sigs);
    detail::check_recipe_length(b, dir, config);
    detail::check_recipe_pooling(b, dir, r.sig);
    return r;
}
#endif

}  // namespace modelexport
