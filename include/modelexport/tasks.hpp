// modelexport/tasks.hpp — Optimum's tasks and the graph signature each needs (docs/design.md §5.3).
//
// The table is share/tasks.json, the one source the exporter and the runtime scripts read too.
#pragma once

#include "modelexport/detail/linkage.hpp"
#include "modelexport/error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelexport {

/// What a task's inputs are. time_series (past_values) and trajectory (a Decision Transformer's states,
/// actions, returns and timesteps) are raw numbers that need no preprocessor.
enum class modality { text, vision, audio, time_series, trajectory };

/// One symbolic axis of a graph input or output: {0, "batch_size"}.
struct axis_name {
    int index;
    std::string_view name;
};

/// The dynamic axes of one graph input or output.
struct tensor_axes {
    std::string_view tensor;
    std::vector<axis_name> axes;
};

/// An architecture suffix that names the task only for some config.json model_types
/// (Wav2Vec2ForSequenceClassification is an audio classifier; a bare BertModel an encoder).
struct suffix_rule {
    std::string_view suffix;
    std::vector<std::string_view> model_types;
};

/// A config.json whose cache is fused: `model_type` matches and `config_key` is true (`default_value` when absent).
struct fused_cache_rule {
    std::string_view model_type, config_key;
    bool default_value = false;
};

/// A cache kept as one tensor per layer, <prefix>.{i}.<suffix> shaped [batch, <length>, 2 * head_dim] (key, then
/// value, on the last axis): how transformers.js reads a multi_query model's cache (GPT-BigCode).
struct fused_kv_cache {
    std::string_view suffix;  ///< "key_value"
    std::vector<fused_cache_rule> when;
    std::vector<axis_name> input_axes, output_axes;  ///< the symbolic axes of each fused tensor
};

/// A decoder's KV cache: <input_prefix>.{i}.key/.value in, <output_prefix>.{i}.key/.value out.
struct kv_cache {
    std::string_view input_prefix, output_prefix;    ///< "past_key_values", "present"
    std::vector<axis_name> input_axes, output_axes;  ///< the symbolic axes of each cache tensor
    fused_kv_cache fused;                            ///< the configs that take the fused form instead
};

/// An encoder-decoder task's multi-file package (Optimum's seq2seq layout, docs/design.md §1).
struct encoder_decoder_files {
    std::string_view exporter;            ///< the exporter script beside htp_exporter.py ("htp_seq2seq.py")
    std::string_view exporter_task;       ///< the --task it takes
    std::vector<std::string_view> files;  ///< the ONNX files it writes; the first (the encoder) is the primary
    std::string_view decoder_output;  ///< what the decoder returns besides its cache ("logits", "last_hidden_state")

    bool empty() const { return files.empty(); }
};

/// A required input that some model types take in another form, under another name (Moonshine's raw waveform
/// input_values where Whisper and Speech2Text take input_features: ORTModelForSpeechSeq2Seq loads all three).
struct input_alternative {
    std::string_view input;
    std::vector<std::string_view> instead;
};

/// One entry of share/tasks.json (the field meanings are documented there and in docs/design.md §5.3).
struct task_info {
    std::string_view name;                  ///< Optimum's task name
    std::vector<std::string_view> aliases;  ///< other names accepted for it ("image-segmentation")
    std::string_view optimum_class;         ///< the ORTModel class that loads it
    modality kind;
    std::vector<std::string_view> inputs;           ///< required graph inputs
    std::vector<std::string_view> optional_inputs;  ///< fed only when the graph has them
    std::vector<std::string_view> outputs;          ///< required graph outputs
    std::vector<std::string_view> optional_outputs;
    std::vector<tensor_axes> dynamic_axes;  ///< per input/output, as the exporter names them
    std::vector<std::string_view>
        architecture_suffixes;                     ///< transformers' class-name suffixes ("ForSequenceClassification")
    std::vector<suffix_rule> model_type_suffixes;  ///< suffixes that name this task only for some model_types
    std::string_view
        auto_class;  ///< transformers' Auto class the exporter loads with ("architectures": config.json's class)
    std::string_view transformers_js_pipeline;          ///< transformers.js pipeline name, empty when none
    bool needs_tokenizer = false;                       ///< the pipeline reads the model's tokenizer or vocabulary
    bool labels = false;                                ///< logits' last axis: one entry per id2label label ...
    int labels_extra = 0;                               ///< ... plus these ("no object" for detection)
    bool with_past = false;                             ///< decoder: the KV cache is a graph input and output
    kv_cache cache;                                     ///< its names and axes (with_past only)
    encoder_decoder_files encoder_decoder;              ///< empty: one model.onnx
    std::vector<input_alternative> input_alternatives;  ///< required inputs a graph may take under another name

    /// Whether a graph whose inputs are `has(name)` takes required input `name`, in one of its forms.
    template <class Has>
    bool takes_required(std::string_view name, Has has) const {
        if (has(name)) return true;
        for (const auto& a : input_alternatives)
            if (a.input == name)
                for (auto other : a.instead)
                    if (has(other)) return true;
        return false;
    }
    /// Whether `name` is one of the forms of a required input other than its own.
    bool is_alternative_input(std::string_view name) const {
        for (const auto& a : input_alternatives)
            if (std::find(a.instead.begin(), a.instead.end(), name) != a.instead.end()) return true;
        return false;
    }
};

/// A task Optimum exports and modelexport does not (share/tasks.json's not_exported), for every model type
/// or only for some (text-to-audio's several-model layouts, beside the row for VITS's one file).
struct refused_task {
    std::string_view name;
    std::vector<std::string_view> aliases;
    std::string_view reason;                    ///< why, for the usage error
    std::vector<std::string_view> model_types;  ///< the config.json model_types refused; empty: every one
};

/// The task table, in share/tasks.json's order (architecture suffixes are matched in this order).
MODELEXPORT_ENTRY const std::vector<task_info>& tasks();
/// Optimum's tasks modelexport does not export, with the reason.
MODELEXPORT_ENTRY const std::vector<refused_task>& refused_tasks();
/// The config.json model_type values transformers knows, sorted.
MODELEXPORT_ENTRY const std::vector<std::string_view>& known_model_types();

}  // namespace modelexport

// The table itself, generated from share/tasks.json at build time (docs/design.md §13).
#if MODELEXPORT_DEFINES(TASKS)
#include "modelexport/tasks_table.hpp"
#endif

namespace modelexport {

namespace detail {
inline bool is_named(const task_info& t, std::string_view name) {
    return t.name == name || std::find(t.aliases.begin(), t.aliases.end(), name) != t.aliases.end();
}
}  // namespace detail

/// Looks a task up by name or alias ("image-segmentation", Optimum's inferred name, is semantic-segmentation):
/// the first row of that name, the one for models that are not encoder-decoders.
inline const task_info* find_task(std::string_view name) {
    for (const auto& t : tasks())
        if (detail::is_named(t, name)) return &t;
    return nullptr;
}

/// The not_exported entry that refuses a task name (or alias) for this config.json (any, when null): one for
/// every model type, or one listing the config's model_type.
inline const refused_task* refused_for(std::string_view name, const nlohmann::json* config) {
    std::string_view model_type;
    if (config && config->is_object())
        if (auto it = config->find("model_type"); it != config->end() && it->is_string())
            model_type = it->get_ref<const std::string&>();
    for (const auto& r : refused_tasks()) {
        if (r.name != name && std::find(r.aliases.begin(), r.aliases.end(), name) == r.aliases.end()) continue;
        if (r.model_types.empty() ||
            (config && std::find(r.model_types.begin(), r.model_types.end(), model_type) != r.model_types.end()))
            return &r;
    }
    return nullptr;
}

/// The row of a task name for a model: where two rows share the name, the one with an encoder_decoder layout is
/// for a config.json whose is_encoder_decoder is true (Whisper's automatic-speech-recognition), the other for
/// every other config (wav2vec2's).
inline const task_info* find_task(std::string_view name, const nlohmann::json& config) {
    if (refused_for(name, &config)) return nullptr;
    const auto flag = config.find("is_encoder_decoder");
    const bool encoder_decoder = flag != config.end() && flag->is_boolean() && flag->get<bool>();
    const task_info* first = nullptr;
    for (const auto& t : tasks()) {
        if (!detail::is_named(t, name)) continue;
        if (t.encoder_decoder.empty() != encoder_decoder) return &t;
        if (!first) first = &t;
    }
    return first;
}

/// Whether the task's package decodes with a KV cache: a decoder-only row's with_past, an encoder-decoder's
/// cached decoder files (Optimum's -with-past tasks; its text2text-generation has none).
inline bool decodes_with_cache(const task_info& t) {
    return t.with_past || std::find(t.encoder_decoder.files.begin(), t.encoder_decoder.files.end(),
                                    "decoder_with_past_model.onnx") != t.encoder_decoder.files.end();
}

/// Whether transformers knows a config.json model_type: Optimum's ORTModel and transformers.js read no other.
inline bool is_known_model_type(std::string_view model_type) {
    const auto& names = known_model_types();
    return std::binary_search(names.begin(), names.end(), model_type);
}

/// The decoder task's cache names and axes (the table's with_past row).
inline const kv_cache& decoder_cache() {
    for (const auto& t : tasks())
        if (t.with_past) return t.cache;
    static const kv_cache none{};
    return none;
}

/// The name of axis `index` in `axes`, or "" when that axis is not symbolic.
inline std::string_view axis_at(const std::vector<axis_name>& axes, int index) {
    for (const auto& a : axes)
        if (a.index == index) return a.name;
    return {};
}

namespace detail {
inline bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
}  // namespace detail

/// The task transformers' auto mappings give an architecture class name
/// ("BertForSequenceClassification" -> text-classification, "GPT2LMHeadModel" -> text-generation,
/// "Wav2Vec2ForSequenceClassification" with model_type wav2vec2 -> audio-classification). The most
/// specific rule of the table wins: the longest suffix, then one restricted to `model_type`. A bare
/// "<X>Model" names feature-extraction only for the encoder model types the table lists; nullptr:
/// the name does not tell.
inline const task_info* task_for_architecture(std::string_view arch, std::string_view model_type) {
    const task_info* best = nullptr;
    std::size_t best_length = 0;
    bool best_restricted = false;
    auto consider = [&](const task_info& t, std::string_view suffix, bool restricted) {
        if (!detail::ends_with(arch, suffix)) return;
        if (suffix.size() > best_length || (suffix.size() == best_length && restricted && !best_restricted))
            best = &t, best_length = suffix.size(), best_restricted = restricted;
    };
    for (const auto& t : tasks()) {
        for (auto suffix : t.architecture_suffixes) consider(t, suffix, false);
        for (const auto& rule : t.model_type_suffixes)
            if (std::find(rule.model_types.begin(), rule.model_types.end(), model_type) != rule.model_types.end())
                consider(t, rule.suffix, true);
    }
    return best;
}

/// config.json's model_type, or "".
inline std::string model_type_of(const nlohmann::json& config) {
    auto mt = config.find("model_type");
    return mt != config.end() && mt->is_string() ? mt->get<std::string>() : "";
}

/// The model class config.json names first in `architectures` ("BertForSequenceClassification"), or "".
inline std::string model_class(const nlohmann::json& config) {
    auto it = config.find("architectures");
    if (it == config.end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) return {};
    return (*it)[0].get<std::string>();
}

/// The task of the first entry of config.json's `architectures` that names one, or nullptr.
inline const task_info* task_for_config(const nlohmann::json& config) {
    auto it = config.find("architectures");
    if (it == config.end() || !it->is_array()) return nullptr;
    std::string model_type = model_type_of(config);
    for (const auto& a : *it)
        if (a.is_string())
            if (const auto* t = task_for_architecture(a.get<std::string>(), model_type)) return t;
    return nullptr;
}

/// A task head config.json's `architectures` names ("BertForQuestionAnswering") and its task.
struct architecture_head {
    std::string name;  ///< empty: no head (a bare `<X>Model` backbone, or unknown classes)
    const task_info* task = nullptr;
};

/// The first architecture that names a head, its task inferred as task_for_config does.
inline architecture_head head_architecture(const nlohmann::json& config) {
    auto it = config.find("architectures");
    if (it == config.end() || !it->is_array()) return {};
    std::string model_type = model_type_of(config);
    for (const auto& a : *it) {
        if (!a.is_string()) continue;
        const auto* t = task_for_architecture(a.get<std::string>(), model_type);
        if (!t || t->name == "feature-extraction") continue;  // the bare "Model" suffix is a backbone
        return {a.get<std::string>(), t};
    }
    return {};
}

/// Whether a checkpoint whose head is for `head` may be exported (or recorded) as `requested`: the same
/// task, one the same Auto class loads (text-generation beside text-generation-with-past: the head, with or
/// without its cache), or the bare base model of a single-file head (feature-extraction and its -with-past).
inline bool task_fits_head(const task_info& requested, const task_info& head) {
    if (head.name == requested.name) return true;  // find_task already mapped synonyms (image-segmentation)
    if (requested.auto_class == head.auto_class && requested.auto_class != "architectures") return true;
    // An encoder-decoder's base model is its own layout (feature-extraction-with-past's four files).
    return requested.auto_class == "AutoModel" && head.encoder_decoder.empty() == requested.encoder_decoder.empty();
}

/// Refuses a requested task that contradicts the head config.json's `architectures` names
/// (docs/design.md §5.3): the export would load a class whose head the weights do not have, and
/// the metadata would name an Optimum class that cannot load the graph. A backbone (or no known
/// class) accepts any task: then --task is what says which head to build. feature-extraction is
/// accepted from any head, as optimum-cli accepts it: the bare base model, the head left out (the
/// exporter's weights gate checks that the base's weights are all there).
inline void check_task_matches_architecture(const task_info& requested, const nlohmann::json& config,
                                            const std::string& config_name) {
    architecture_head head = head_architecture(config);
    if (head.name.empty()) return;
    const task_info* inferred = head.task;
    if (task_fits_head(requested, *inferred)) return;
    throw usage_error(config_name,
                      "\"architectures\" names " + head.name + " (task " + std::string(inferred->name) +
                          "), which contradicts --task " + std::string(requested.name),
                      "drop --task (or pass --task " + std::string(inferred->name) +
                          "), or export a checkpoint whose head is for " + std::string(requested.name));
}

/// Why task_for_config found nothing, for the "pass --task" error: which classes were named.
inline std::string architectures_hint(const nlohmann::json& config) {
    auto it = config.find("architectures");
    std::string names;
    if (it != config.end() && it->is_array())
        for (const auto& a : *it)
            if (a.is_string()) names += (names.empty() ? "" : ", ") + a.get<std::string>();
    return names.empty() ? "none given" : names + ": no task head modelexport knows for this model_type";
}

/// All task names, for help texts and error messages.
inline std::string task_names() {
    std::string out;
    for (const auto& t : tasks())
        if (find_task(t.name) == &t) out += (out.empty() ? "" : ", ") + std::string(t.name);  // a shared name once
    return out;
}

/// The usage error's message for a --task that names no row for the config (any config, when null): the
/// reason when modelexport does not export that task of Optimum's (for this model type), else the known names.
inline std::string unknown_task_message(std::string_view requested, const nlohmann::json* config = nullptr) {
    if (const auto* r = refused_for(requested, config))
        return "task '" + std::string(requested) + "' is not exported by modelexport" +
               (r->model_types.empty() ? std::string() : " for this model_type") + ": " + std::string(r->reason);
    return "unknown task '" + std::string(requested) + "'; known tasks: " + task_names();
}

/// The task for a config: `requested` if given (its row for this kind of model), else from `architectures`.
inline const task_info& resolve_task(const std::string& requested, const nlohmann::json& config,
                                     const std::string& config_name) {
    if (!requested.empty()) {
        const auto* t = find_task(requested, config);
        if (!t) throw usage_error("--task", unknown_task_message(requested, &config));
        check_task_matches_architecture(*t, config, config_name);
        return *t;
    }
    if (const auto* t = task_for_config(config)) return *t;
    throw invalid_input(config_name,
                        "cannot infer the task from \"architectures\" (" + architectures_hint(config) + ")",
                        "pass --task (one of: " + task_names() + ")");
}

}  // namespace modelexport
