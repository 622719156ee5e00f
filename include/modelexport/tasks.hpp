// modelexport/tasks.hpp — Optimum's tasks and the graph signature each needs (docs/design.md §5).
#pragma once

#include "modelexport/error.hpp"

#include <nlohmann/json.hpp>

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
    std::string_view architecture_suffix;  ///< transformers' class-name suffix ("ForSequenceClassification")
};

namespace detail {
inline const std::vector<std::string_view> text_inputs{"input_ids", "attention_mask"};
inline const std::vector<std::string_view> text_optional{"token_type_ids"};
}  // namespace detail

/// The table. Order matters for suffix matching: longer suffixes first is not
/// needed because no suffix is a suffix of another, except "Model" (last).
inline const std::vector<task_info>& tasks() {
    using namespace detail;
    static const std::vector<task_info> table{
        {"text-classification", "ORTModelForSequenceClassification", modality::text, text_inputs, text_optional, {"logits"}, {}, "ForSequenceClassification"},
        {"token-classification", "ORTModelForTokenClassification", modality::text, text_inputs, text_optional, {"logits"}, {}, "ForTokenClassification"},
        {"question-answering", "ORTModelForQuestionAnswering", modality::text, text_inputs, text_optional, {"start_logits", "end_logits"}, {}, "ForQuestionAnswering"},
        {"multiple-choice", "ORTModelForMultipleChoice", modality::text, text_inputs, text_optional, {"logits"}, {}, "ForMultipleChoice"},
        {"fill-mask", "ORTModelForMaskedLM", modality::text, text_inputs, text_optional, {"logits"}, {}, "ForMaskedLM"},
        {"image-classification", "ORTModelForImageClassification", modality::vision, {"pixel_values"}, {}, {"logits"}, {}, "ForImageClassification"},
        {"semantic-segmentation", "ORTModelForSemanticSegmentation", modality::vision, {"pixel_values"}, {}, {"logits"}, {"pred_masks"}, "ForSemanticSegmentation"},
        {"object-detection", "ORTModelForCustomTasks", modality::vision, {"pixel_values"}, {}, {"logits", "pred_boxes"}, {}, "ForObjectDetection"},
        {"audio-classification", "ORTModelForAudioClassification", modality::audio, {"input_values"}, {}, {"logits"}, {}, "ForAudioClassification"},
        {"feature-extraction", "ORTModelForFeatureExtraction", modality::text, text_inputs, text_optional, {"last_hidden_state"}, {}, "Model"},
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

/// The task transformers' auto mappings give an architecture class name
/// ("BertForSequenceClassification" -> text-classification, "BertModel" -> feature-extraction).
inline const task_info* task_for_architecture(std::string_view arch) {
    for (const auto& t : tasks()) {
        auto suffix = t.architecture_suffix;
        if (arch.size() > suffix.size() && arch.substr(arch.size() - suffix.size()) == suffix) return &t;
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
inline const task_info* task_for_config(const nlohmann::json& config) {
    auto it = config.find("architectures");
    if (it == config.end() || !it->is_array()) return nullptr;
    for (const auto& a : *it)
        if (a.is_string())
            if (const auto* t = task_for_architecture(a.get<std::string>())) return t;
    return nullptr;
}

/// The first architecture in config.json that names a task head ("BertForQuestionAnswering"),
/// or "" when it names none (a bare `<X>Model` backbone, or unknown classes).
inline std::string head_architecture(const nlohmann::json& config) {
    auto it = config.find("architectures");
    if (it == config.end() || !it->is_array()) return {};
    for (const auto& a : *it) {
        if (!a.is_string()) continue;
        const auto* t = task_for_architecture(a.get<std::string>());
        if (t && t->architecture_suffix != "Model") return a.get<std::string>();
    }
    return {};
}

/// Refuses a requested task that contradicts the head config.json's `architectures` names
/// (docs/design.md §5.3): the export would load a class whose head the weights do not have, and
/// the metadata would name an Optimum class that cannot load the graph. A backbone (or no known
/// class) accepts any task: then --task is what says which head to build.
inline void check_task_matches_architecture(const task_info& requested, const nlohmann::json& config, const std::string& config_name) {
    std::string head = head_architecture(config);
    if (head.empty()) return;
    const task_info* inferred = task_for_architecture(head);
    if (inferred->name == requested.name) return;  // find_task already mapped synonyms (image-segmentation)
    throw usage_error(config_name, "\"architectures\" names " + head + " (task " + std::string(inferred->name) +
                                       "), which contradicts --task " + std::string(requested.name),
                      "drop --task (or pass --task " + std::string(inferred->name) + "), or export a checkpoint with a " +
                          std::string(requested.name) + " head");
}

/// All task names, for help texts and error messages.
inline std::string task_names() {
    std::string out;
    for (const auto& t : tasks()) out += (out.empty() ? "" : ", ") + std::string(t.name);
    return out;
}

}  // namespace modelexport
