// modelexport/export/module_table.hpp — the exporter's module table, read and written in one place.
//
// An htp exporter writes, beside its ONNX files, a JSON table of what it traced and found: each
// file's modules (tools/htp_exporter.py: one file, "modules"; tools/htp_seq2seq.py: format 2, one
// entry per ONNX file under "files"), the torch version, the parameter count, where the signature
// came from, the reference check and a sentence-transformers recipe. The export cache stores the
// same table with each entry. One type reads every form and writes the cache's, so a field is
// added in one place and a table of the wrong shape is refused by one rule: the exporter's is an
// unusable table (export_failed), a cache entry's a miss.
#pragma once

#include "modelexport/detail/json_file.hpp"
#include "modelexport/export/reference_check.hpp"
#include "modelexport/export/sentence_pipeline.hpp"
#include "modelexport/onnx/hierarchy.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace modelexport {

struct module_table {
    std::vector<std::string> models;                 ///< the ONNX files it describes, the primary first
    std::vector<std::vector<traced_module>> traces;  ///< each file's trace, parallel to `models`
    std::string torch_version;
    std::string onnx_exporter;
    std::string signature_source;  ///< where the exporter took the signature from: "optimum" or "task table"
    long long parameters = 0;      ///< torch's count
    reference_check reference = reference_check::not_run("the exporter recorded no reference check");
    sentence_pipeline pipeline;           ///< --library sentence-transformers: what sentence_embedding computes
    json phase_seconds = json::object();  ///< the exporter's own phases, for --report only (not cached)

    /// Reads a table: the files under "files" (format 2, or a cache entry of several files), else one
    /// model.onnx traced as "modules". Throws (std::runtime_error, nlohmann's type errors) on any other shape.
    static module_table from_json(const json& t) {
        module_table out;
        if (!t.is_object()) throw std::runtime_error("not a JSON object");
        if (!t.contains("files")) {
            out.models = {"model.onnx"};
            out.traces = {traced_modules_from_json(t)};
        } else {
            for (const auto& entry : t.at("files")) {
                out.models.push_back(entry.at("file").get<std::string>());
                out.traces.push_back(traced_modules_from_json(entry));
            }
            if (out.models.empty()) throw std::runtime_error("the module table lists no files");
        }
        out.torch_version = t.value("torch_version", "");
        out.onnx_exporter = t.value("onnx_exporter", "");
        out.parameters = t.value("parameters", 0LL);
        const json signature = t.value("signature", json::object());
        if (!signature.is_object() || !signature.value("source", json("")).is_string())
            throw std::runtime_error("its signature is not an object naming its source");
        out.signature_source = signature.value("source", "");
        out.reference = reference_check::from_table(t);
        out.pipeline = sentence_pipeline::from_json(t);
        const json phases = t.value("phase_seconds", json::object());
        if (phases.is_object())
            for (const auto& [phase, seconds] : phases.items())
                if (seconds.is_number()) out.phase_seconds[phase] = seconds;
        return out;
    }

    /// The cache's form: "modules" is the primary's trace; several files add "files", each one's name and trace.
    json to_json() const {
        json table{{"modules", modules_json(traces.at(0))},
                   {"torch_version", torch_version},
                   {"onnx_exporter", onnx_exporter},
                   {"parameters", parameters},
                   {"signature", {{"source", signature_source}}},
                   {"reference_check", reference.to_json()}};
        if (!pipeline.empty()) table["sentence_transformers"] = pipeline.to_json();
        if (models.size() < 2) return table;
        json files = json::array();
        for (std::size_t i = 0; i < models.size(); ++i)
            files.push_back({{"file", models[i]}, {"modules", modules_json(traces.at(i))}});
        table["files"] = std::move(files);
        return table;
    }

    /// The table of a staged model (a strategy's produced_onnx): its files and what the exporter reported.
    template <class Staged>
    static module_table of(const Staged& staged) {
        module_table t;
        t.models = staged.models;
        t.traces = staged.model_modules.empty() ? std::vector<std::vector<traced_module>>{staged.modules}
                                                : staged.model_modules;
        t.torch_version = staged.torch_version;
        t.onnx_exporter = staged.onnx_exporter;
        t.signature_source = staged.signature_source;
        t.parameters = staged.parameters;
        t.reference = staged.reference;
        t.pipeline = staged.pipeline;
        return t;
    }

    /// Gives a staged model what the table says: its files, their traces (the primary's as `modules`;
    /// each file's as `model_modules` when there are several) and the exporter's reports.
    template <class Staged>
    void fill(Staged& staged) const {
        staged.models = models;
        staged.modules = traces.at(0);
        if (models.size() > 1) staged.model_modules = traces;
        staged.torch_version = torch_version;
        staged.onnx_exporter = onnx_exporter;
        staged.signature_source = signature_source;
        staged.parameters = parameters;
        staged.reference = reference;
        staged.pipeline = pipeline;
        staged.exporter_seconds = phase_seconds;
    }

    /// Keeps the files in `wanted`'s order; each must be in the table (an exporter wrote what the task declares).
    template <class Names>
    void order_as(const Names& wanted) {
        std::vector<std::string> ordered;
        std::vector<std::vector<traced_module>> ordered_traces;
        for (const auto& name : wanted) {
            auto at = std::find(models.begin(), models.end(), std::string(name));
            if (at == models.end()) throw std::runtime_error("no entry for " + std::string(name));
            ordered.push_back(*at);
            ordered_traces.push_back(traces.at(static_cast<std::size_t>(at - models.begin())));
        }
        models = std::move(ordered);
        traces = std::move(ordered_traces);
    }

private:
    static json modules_json(const std::vector<traced_module>& trace) {
        json modules = json::array();
        for (const auto& m : trace) {
            json j{{"path", m.path}, {"class", m.class_name}, {"torch_module", m.torch_module}};
            if (m.order) j["order"] = *m.order;
            modules.push_back(std::move(j));
        }
        return modules;
    }
};

}  // namespace modelexport
