// modelexport/export/sentence_pipeline.hpp — what a sentence_embedding output computes (docs/cli.md, --library).
//
// `export --library sentence-transformers` traces a sentence-transformers checkpoint's whole pipeline
// (tools/htp_sentence.py): the transformer, then the modules its modules.json lists (Pooling, Dense,
// Normalize). The exporter records those modules in its module table; the record travels with the
// staged model (and through the export cache) into export_metadata.json as model.sentence_transformers,
// where validate compares it with the package's modules.json and the graph's sentence_embedding.
#pragma once

#include "modelexport/detail/json_file.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace modelexport {

struct sentence_pipeline {
    std::vector<std::string> modules;  ///< the module classes after the transformer, in order ("Pooling", "Normalize")
    std::vector<std::string> pooling;  ///< the Pooling module's modes ("mean", "cls", ...)
    long long dimension = 0;           ///< the width of sentence_embedding

    bool empty() const { return modules.empty(); }

    /// The record of a module table or of export_metadata.json's model section; none: empty.
    static sentence_pipeline from_json(const json& holder, const char* key = "sentence_transformers") {
        sentence_pipeline p;
        auto record = holder.is_object() ? holder.find(key) : holder.end();
        if (record == holder.end() || record->is_null()) return p;
        if (!record->is_object() || !record->contains("modules") || !(*record)["modules"].is_array())
            throw std::runtime_error(std::string(key) + " is not an object with a \"modules\" list");
        const std::string shape =
            std::string(key) +
            " is not {\"modules\": [{\"module\": name, \"modes\": [...]}, ...], \"dimension\": n > 0}";
        for (const auto& step : (*record)["modules"]) {
            auto module = step.is_object() ? step.find("module") : step.end();
            if (module == step.end() || !module->is_string()) throw std::runtime_error(shape);
            p.modules.push_back(module->get<std::string>());
            auto modes = step.find("modes");
            if (p.modules.back() != "Pooling" || modes == step.end()) continue;
            if (!modes->is_array()) throw std::runtime_error(shape);
            for (const auto& mode : *modes) {
                if (!mode.is_string()) throw std::runtime_error(shape);
                p.pooling.push_back(mode.get<std::string>());
            }
        }
        auto dimension = record->find("dimension");
        if (p.modules.empty() || dimension == record->end() || !dimension->is_number_integer() ||
            dimension->get<long long>() <= 0)
            throw std::runtime_error(shape);
        p.dimension = dimension->get<long long>();
        return p;
    }

    json to_json() const {
        json steps = json::array();
        for (const auto& m : modules) {
            json step{{"module", m}};
            if (m == "Pooling") step["modes"] = pooling;
            steps.push_back(std::move(step));
        }
        return {{"library", "sentence-transformers"}, {"modules", steps}, {"dimension", dimension}};
    }
};

}  // namespace modelexport
