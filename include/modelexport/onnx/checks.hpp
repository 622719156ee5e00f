// modelexport/onnx/checks.hpp — the checks every ONNX file gets, once, for both
// `export` (before a package is committed) and `validate` (check ids
// onnx.external_data and onnx.checker).
#pragma once

#include "modelexport/onnx/model.hpp"
#include "modelexport/onnx/stream.hpp"
#include "modelexport/onnx/tensor_walk.hpp"

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

namespace detail {

/// The number of typed values (float_data, int32_data, ...) a tensor of this type and shape needs.
inline std::optional<std::uint64_t> typed_value_count(const onnx::TensorProto& t) {
    std::uint64_t n = 1;
    for (auto d : t.dims())
        if (d < 0 || __builtin_mul_overflow(n, static_cast<std::uint64_t>(d), &n)) return std::nullopt;
    bool complex =
        t.data_type() == onnx::TensorProto_DataType_COMPLEX64 || t.data_type() == onnx::TensorProto_DataType_COMPLEX128;
    if (complex && __builtin_mul_overflow(n, 2u, &n)) return std::nullopt;
    return n;
}

/// An inline or external tensor whose payload is not the size its type and shape
/// need (ONNX Runtime refuses those when it loads the tensor); empty when fine.
inline std::string tensor_size_problem(const onnx::TensorProto& t, const std::string& where,
                                       const fs::path& package_dir) {
    std::vector<std::int64_t> dims(t.dims().begin(), t.dims().end());
    if (is_external(t)) {
        external_reference r = external_reference_of(t, where);
        std::uint64_t length = static_cast<std::uint64_t>(r.length);
        if (r.length < 0) {  // to the end of the file, which the containment check found to hold at least offset bytes
            std::error_code ec;
            length = fs::file_size(package_dir / r.location, ec) - r.offset;
            if (ec) return {};
        }
        return payload_size_problem(where, t.data_type(), dims, length);
    }
    if (t.has_raw_data()) return payload_size_problem(where, t.data_type(), dims, t.raw_data().size());
    std::uint64_t typed = static_cast<std::uint64_t>(t.float_data_size()) + t.int32_data_size() + t.string_data_size() +
                          t.int64_data_size() + t.double_data_size() + t.uint64_data_size();
    if (typed == 0) return {};  // no data at all: onnx::checker's "one and only one value field" rule
    std::string problem;
    payload_bytes(t.data_type(), dims, problem);
    if (!problem.empty()) return where + " " + problem;
    auto need = typed_value_count(t);
    if (need && *need != typed)
        return where + " holds " + std::to_string(typed) + " values but its shape needs " + std::to_string(*need);
    return {};
}

/// Rewrites every relative external-data location as an absolute path under `dir`:
/// check_model(ModelProto) resolves locations against the working directory.
inline void absolutize_external_locations(onnx::ModelProto& model, const fs::path& dir) {
    for_each_tensor(model, [&](onnx::TensorProto& t, const tensor_site&) {
        if (!is_external(t)) return;
        for (auto& kv : *t.mutable_external_data())
            if (kv.key() == "location" && !fs::path(kv.value()).is_absolute())
                kv.set_value((dir / kv.value()).string());
    });
}

}  // namespace detail

/// Checks a model read by load_onnx_light that lives (or will live) in `package_dir`:
/// the external data of every tensor the model holds (onnx/tensor_walk.hpp) must stay
/// inside the package; then every tensor's payload must have the size its type and
/// shape need, and onnx::checker must accept the model. Locations resolve against
/// `package_dir` only, never the working directory (docs/design.md §11). Relative
/// locations are made absolute in `m` on the way, for the checker.
inline onnx_verdict check_onnx(light_model& m, const fs::path& package_dir) {
    onnx_verdict v;
    const fs::path dir = fs::absolute(package_dir);
    for_each_tensor(m.model, [&](onnx::TensorProto& t, const tensor_site& site) {
        if (!v.external_data.empty()) return;
        if (const skipped_payload* p = m.skipped_at(site)) {
            // Its raw_data was skipped: ONNX Runtime would follow the EXTERNAL location it also declares.
            if (p->declared_external)
                v.external_data = site.where + " has both inline data and an external data location";
            return;
        }
        if (is_external(t)) v.external_data = external_reference_problem(external_reference_of(t, site.where), dir);
    });
    if (!v.external_data.empty()) return v;
    v.checker.emplace();
    for_each_tensor(m.model, [&](onnx::TensorProto& t, const tensor_site& site) {
        if (!v.checker->empty()) return;
        const skipped_payload* p = m.skipped_at(site);
        *v.checker = p ? payload_problem(*p) : detail::tensor_size_problem(t, site.where, dir);
    });
    if (!v.checker->empty()) return v;
    detail::absolutize_external_locations(m.model, dir);
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
