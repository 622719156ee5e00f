// modelexport/tasks.hpp — Optimum's tasks and the graph signature each needs (docs/design.md §5.3).
//
// The table is share/tasks.json, the one source the exporter and the runtime scripts read too.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelexport {

enum class modality { text, vision, audio };

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

/// One entry of share/tasks.json (the field meanings are documented there and in docs/design.md §5.3).
struct task_info {
    std::string_view name;                          ///< Optimum's task name
    std::vector<std::string_view> aliases;          ///< other names accepted for it ("image-segmentation")
    std::string_view optimum_class;                 ///< the ORTModel class that loads it
    modality kind;
    std::vector<std::string_view> inputs;            ///< required graph inputs
    std::vector<std::string_view> optional_inputs;   ///< fed only when the graph has them
    std::vector<std::string_view> outputs;           ///< required graph outputs
    std::vector<std::string_view> optional_outputs;
    std::vector<tensor_axes> dynamic_axes;           ///< per input/output, as the exporter names them
    std::vector<std::string_view> architecture_suffixes;  ///< transformers' class-name suffixes ("ForSequenceClassification")
    std::string_view auto_class;                     ///< transformers' Auto class the exporter loads with
    std::string_view transformers_js_pipeline;       ///< transformers.js pipeline name, empty when none
};

}  // namespace modelexport

// The table itself, generated from share/tasks.json at configure time (docs/design.md §13).
#include "modelexport/tasks_table.hpp"

namespace modelexport {

/// Looks a task up by name or alias ("image-segmentation", Optimum's inferred name, is semantic-segmentation).
inline const task_info* find_task(std::string_view name) {
    for (const auto& t : tasks())
        if (t.name == name || std::find(t.aliases.begin(), t.aliases.end(), name) != t.aliases.end()) return &t;
    return nullptr;
}

/// The task transformers' auto mappings give an architecture class name
/// ("BertForSequenceClassification" -> text-classification, "BertModel" -> feature-extraction).
inline const task_info* task_for_architecture(std::string_view arch) {
    for (const auto& t : tasks())
        for (auto suffix : t.architecture_suffixes)
            if (arch.size() > suffix.size() && arch.substr(arch.size() - suffix.size()) == suffix) return &t;
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

/// All task names, for help texts and error messages.
inline std::string task_names() {
    std::string out;
    for (const auto& t : tasks()) out += (out.empty() ? "" : ", ") + std::string(t.name);
    return out;
}

}  // namespace modelexport
