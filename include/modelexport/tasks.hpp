// modelexport/tasks.hpp — Optimum's tasks and the graph signature each needs (docs/design.md §5).
#pragma once

#include "modelexport/error.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelexport {

enum class modality { text, vision, audio };

struct task_info {
    std::string_view name;           ///< Optimum's task name
    std::string_view optimum_class;  ///< the ORTModel class that loads it
    modality kind;
    std::vector<std::string_view> inputs;            ///< required graph inputs
    std::vector<std::string_view> optional_inputs;   ///< fed only when the graph has them
    std::vector<std::string_view> outputs;           ///< required graph outputs
    std::vector<std::string_view> optional_outputs;
    std::vector<std::string_view> architecture_suffixes;  ///< transformers' class-name suffixes ("ForSequenceClassification")
    bool with_past = false;  ///< decoder: past_key_values.{i}.key/.value in, present.{i}.key/.value out (SPEC §5)
};

namespace detail {
inline const std::vector<std::string_view> text_inputs{"input_ids", "attention_mask"};
inline const std::vector<std::string_view> text_optional{"token_type_ids"};
// Optimum exports Wav2Vec2-like models with input_values only, but its audio classes
// feed an attention_mask a graph declares (models whose feature extractor returns one).
inline const std::vector<std::string_view> audio_optional{"attention_mask"};

/// Audio model types whose *ForSequenceClassification is transformers'
/// AutoModelForAudioClassification, not a text classifier.
inline bool audio_model_type(std::string_view model_type) {
    static constexpr std::array<std::string_view, 6> types{"wav2vec2", "hubert", "wavlm", "data2vec-audio", "sew", "sew-d"};
    return std::find(types.begin(), types.end(), model_type) != types.end();
}
}  // namespace detail

/// The table. Order matters for suffix matching: "LMHeadModel" comes before
/// feature-extraction's bare "Model", which is matched last and only for the
/// encoder families below (task_for_architecture).
inline const std::vector<task_info>& tasks() {
    using namespace detail;
    static const std::vector<task_info> table{
        {"text-classification", "ORTModelForSequenceClassification", modality::text, text_inputs, text_optional, {"logits"}, {}, {"ForSequenceClassification"}},
        {"token-classification", "ORTModelForTokenClassification", modality::text, text_inputs, text_optional, {"logits"}, {}, {"ForTokenClassification"}},
        {"question-answering", "ORTModelForQuestionAnswering", modality::text, text_inputs, text_optional, {"start_logits", "end_logits"}, {}, {"ForQuestionAnswering"}},
        {"multiple-choice", "ORTModelForMultipleChoice", modality::text, text_inputs, text_optional, {"logits"}, {}, {"ForMultipleChoice"}},
        {"fill-mask", "ORTModelForMaskedLM", modality::text, text_inputs, text_optional, {"logits"}, {}, {"ForMaskedLM"}},
        {"image-classification", "ORTModelForImageClassification", modality::vision, {"pixel_values"}, {}, {"logits"}, {}, {"ForImageClassification"}},
        {"semantic-segmentation", "ORTModelForSemanticSegmentation", modality::vision, {"pixel_values"}, {}, {"logits"}, {"pred_masks"}, {"ForSemanticSegmentation"}},
        {"object-detection", "ORTModelForCustomTasks", modality::vision, {"pixel_values"}, {}, {"logits", "pred_boxes"}, {}, {"ForObjectDetection"}},
        {"audio-classification", "ORTModelForAudioClassification", modality::audio, {"input_values"}, audio_optional, {"logits"}, {}, {"ForAudioClassification"}},
        {"automatic-speech-recognition", "ORTModelForCTC", modality::audio, {"input_values"}, audio_optional, {"logits"}, {}, {"ForCTC"}},
        // Decoder-only LMs with their cache in one model.onnx (Optimum's text-generation-with-past).
        {"text-generation", "ORTModelForCausalLM", modality::text, text_inputs, {"position_ids"}, {"logits"}, {}, {"LMHeadModel", "ForCausalLM"}, true},
        {"feature-extraction", "ORTModelForFeatureExtraction", modality::text, text_inputs, text_optional, {"last_hidden_state"}, {}, {"Model"}},
    };
    return table;
}

/// Looks a task up by name; "image-segmentation" (Optimum's inferred name) means semantic-segmentation.
inline const task_info* find_task(std::string_view name) {
    if (name == "image-segmentation") name = "semantic-segmentation";
    for (const auto& t : tasks())
        if (t.name == name) return &t;
    return nullptr;
}

/// Model types whose bare `<X>Model` class is an encoder giving last_hidden_state,
/// so that `architectures: ["BertModel"]` means feature-extraction. Any other bare
/// `Model` (CLIPModel, GPT2Model, T5Model) has no single Optimum task: --task decides.
inline bool is_encoder_model_type(std::string_view model_type) {
    static constexpr std::array<std::string_view, 14> encoders{"bert", "roberta", "distilbert", "xlm-roberta", "albert", "electra",
                                                                "mpnet", "deberta", "deberta-v2", "camembert", "vit", "deit",
                                                                "convnext", "mobilebert"};
    return std::find(encoders.begin(), encoders.end(), model_type) != encoders.end();
}

namespace detail {
inline bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
}  // namespace detail

/// The task transformers' auto mappings give an architecture class name
/// ("BertForSequenceClassification" -> text-classification, "GPT2LMHeadModel" ->
/// text-generation); a bare "BertModel" is feature-extraction only for an encoder
/// `model_type` (is_encoder_model_type). nullptr: the name does not tell.
inline const task_info* task_for_architecture(std::string_view arch, std::string_view model_type) {
    for (const auto& t : tasks())
        for (auto suffix : t.architecture_suffixes) {
            if (!detail::ends_with(arch, suffix)) continue;
            if (suffix == "Model" && !is_encoder_model_type(model_type)) return nullptr;
            return &t;
        }
    return nullptr;
}

/// The model class config.json names first in `architectures` ("BertForSequenceClassification"), or "".
inline std::string model_class(const nlohmann::json& config) {
    auto it = config.find("architectures");
    if (it == config.end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) return {};
    return (*it)[0].get<std::string>();
}

/// The task of the first entry of config.json's `architectures` that names one, or nullptr.
/// The suffix alone is ambiguous for audio models: Wav2Vec2ForSequenceClassification is
/// an audio classifier, so the model_type decides.
inline const task_info* task_for_config(const nlohmann::json& config) {
    auto it = config.find("architectures");
    if (it == config.end() || !it->is_array()) return nullptr;
    auto mt = config.find("model_type");
    std::string model_type = mt != config.end() && mt->is_string() ? mt->get<std::string>() : "";
    bool audio = detail::audio_model_type(model_type);
    for (const auto& a : *it)
        if (a.is_string())
            if (const auto* t = task_for_architecture(a.get<std::string>(), model_type))
                return audio && t->name == "text-classification" ? find_task("audio-classification") : t;
    return nullptr;
}

/// A task head config.json's `architectures` names ("BertForQuestionAnswering") and its task.
struct architecture_head {
    std::string name;              ///< empty: no head (a bare `<X>Model` backbone, or unknown classes)
    const task_info* task = nullptr;
};

/// The first architecture that names a head, its task inferred as task_for_config does.
inline architecture_head head_architecture(const nlohmann::json& config) {
    auto it = config.find("architectures");
    if (it == config.end() || !it->is_array()) return {};
    auto mt = config.find("model_type");
    std::string model_type = mt != config.end() && mt->is_string() ? mt->get<std::string>() : "";
    for (const auto& a : *it) {
        if (!a.is_string()) continue;
        const auto* t = task_for_architecture(a.get<std::string>(), model_type);
        if (!t || t->name == "feature-extraction") continue;  // the bare "Model" suffix is a backbone
        if (detail::audio_model_type(model_type) && t->name == "text-classification") t = find_task("audio-classification");
        return {a.get<std::string>(), t};
    }
    return {};
}

/// Refuses a requested task that contradicts the head config.json's `architectures` names
/// (docs/design.md §5.3): the export would load a class whose head the weights do not have, and
/// the metadata would name an Optimum class that cannot load the graph. A backbone (or no known
/// class) accepts any task: then --task is what says which head to build.
inline void check_task_matches_architecture(const task_info& requested, const nlohmann::json& config, const std::string& config_name) {
    architecture_head head = head_architecture(config);
    if (head.name.empty()) return;
    const task_info* inferred = head.task;
    if (inferred->name == requested.name) return;  // find_task already mapped synonyms (image-segmentation)
    throw usage_error(config_name, "\"architectures\" names " + head.name + " (task " + std::string(inferred->name) +
                                       "), which contradicts --task " + std::string(requested.name),
                      "drop --task (or pass --task " + std::string(inferred->name) + "), or export a checkpoint with a " +
                          std::string(requested.name) + " head");
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
    for (const auto& t : tasks()) out += (out.empty() ? "" : ", ") + std::string(t.name);
    return out;
}

}  // namespace modelexport
