// modelexport/onnx_checks.hpp — the checks every ONNX file gets, once, for both
// `export` (before a package is committed) and `validate` (check ids
// onnx.external_data and onnx.checker).
#pragma once

#include "modelexport/onnx_model.hpp"
#include "modelexport/onnx_stream.hpp"

#include <onnx/checker.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>
#include <string>

namespace modelexport {

/// Problems found; an empty string passes. `checker` is nullopt when the checker
/// could not run because the external data is unsafe to follow.
struct onnx_verdict {
    std::string external_data;
    std::optional<std::string> checker;
};

/// Checks a model read by load_onnx_light that lives (or will live) in `package_dir`:
/// real external data must stay inside the package; then every skipped payload must
/// have the size its type and shape need, and onnx::checker must accept the model.
/// Relative external-data locations are made absolute in `m` on the way, because
/// check_model(ModelProto) resolves them against the working directory.
inline onnx_verdict check_onnx(light_model& m, const fs::path& package_dir) {
    onnx_verdict v;
    std::set<std::string> inline_payloads;
    for (const auto& p : m.payloads) inline_payloads.insert(p.tensor);
    for (const auto& ref : external_references(m.model.graph()))
        if (v.external_data.empty() && !inline_payloads.count(ref.tensor)) v.external_data = external_reference_problem(ref, package_dir);
    if (!v.external_data.empty()) return v;
    absolutize_external_locations(m.model, fs::absolute(package_dir));
    v.checker.emplace();
    for (const auto& p : m.payloads)
        if (v.checker->empty()) *v.checker = payload_problem(p);
    if (!v.checker->empty()) return v;
    try {
        onnx::checker::check_model(m.model);
    } catch (const std::exception& e) {
        std::string what = e.what();
        std::replace(what.begin(), what.end(), '\n', ' ');
        *v.checker = what;
    }
    return v;
}

}  // namespace modelexport
