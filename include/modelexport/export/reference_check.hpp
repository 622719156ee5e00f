// modelexport/export/reference_check.hpp — what the exporter's reference check found (docs/design.md §3).
//
// The htp exporters compare the ONNX model's outputs with the torch model's on inputs other than
// the trace's (tools/htp_reference.py) and record the result in their module table. The record
// travels with the staged model (and through the export cache) into export_metadata.json as
// "reference_check". A failed check never gets here: the exporter exits with
// reference_mismatch_status and the export fails with exit_code::reference_mismatch.
#pragma once

#include "modelexport/detail/json_file.hpp"

#include <string>

namespace modelexport {

/// The exporter's exit status for a failed reference check (htp_exporter.py REFERENCE_MISMATCH_STATUS).
inline constexpr int reference_mismatch_status = 4;

struct reference_check {
    /// passed, skipped (--no-reference-check) or not_run (the reason says why: a prebuilt model, no onnxruntime)
    std::string status = "not_run";
    std::string reason;
    json detail =
        json::object();  ///< the exporter's record: atol, rtol, steps (inputs' shapes, per-output max abs diff)

    static reference_check not_run(std::string why) { return {"not_run", std::move(why), json::object()}; }

    /// The record of a module table; a table without one (a custom exporter) is "not_run".
    static reference_check from_table(const json& table) {
        const json record = table.value("reference_check", json());
        if (!record.is_object()) return not_run("the exporter recorded no reference check");
        std::string status = record.value("status", "");
        if (status != "passed" && status != "skipped" && status != "not_run")
            throw std::runtime_error("reference_check has status '" + status + "'");
        return {status, record.value("reason", ""), record};
    }

    json to_json() const {
        json j = detail.is_object() ? detail : json::object();
        j["status"] = status;
        if (!reason.empty()) j["reason"] = reason;
        return j;
    }
};

}  // namespace modelexport
