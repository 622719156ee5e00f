// modelexport/package/variant_names.hpp — the variants export --variants makes and the files they are
// (docs/variants.md): transformers.js's dtype names and file suffixes, and ONNX Runtime's ORT format.
// The export (export/variants.hpp), plan and validate name variant files with these functions alone.
#pragma once

#include "modelexport/error.hpp"
#include "modelexport/package/file_roles.hpp"

#include <algorithm>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace modelexport {

/// A variant name and the suffix transformers.js's dtype adds to an ONNX file's stem; `ort` has none.
struct variant_kind {
    std::string_view name;
    std::string_view suffix;  ///< "_quantized" for q8: model_quantized.onnx
};

/// transformers.js's names (DEFAULT_DTYPE_SUFFIX_MAPPING) and ONNX Runtime's ORT format.
inline constexpr variant_kind variant_kinds[] = {
    {"q8", "_quantized"}, {"int8", "_int8"},   {"uint8", "_uint8"}, {"fp16", "_fp16"},
    {"q4", "_q4"},        {"q4f16", "_q4f16"}, {"ort", ""},
};

inline constexpr std::string_view ort_variant = "ort";
inline constexpr std::string_view ort_operators_file = "required_operators.config";

/// The known variant names, comma-separated (for messages).
inline std::string variant_names() {
    std::string out;
    for (const auto& k : variant_kinds) out += (out.empty() ? "" : ", ") + std::string(k.name);
    return out;
}

/// A --variants value ("q8,fp16,ort"): known names, each once; empty entries are a usage error.
inline std::vector<std::string> parse_variants(const std::string& text, const std::string& shown = "--variants") {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= text.size() && !text.empty()) {
        std::size_t comma = std::min(text.find(',', start), text.size());
        std::string name = text.substr(start, comma - start);
        if (std::none_of(std::begin(variant_kinds), std::end(variant_kinds),
                         [&](const variant_kind& k) { return k.name == name; }))
            throw usage_error(shown, "unknown variant '" + printable(name) + "'; known: " + variant_names());
        if (std::find(out.begin(), out.end(), name) != out.end())
            throw usage_error(shown, "lists '" + name + "' twice");
        out.push_back(name);
        start = comma + 1;
    }
    return out;
}

/// The file a variant makes of the ONNX file `onnx` ("model.onnx", q8 -> "model_quantized.onnx"; ort -> "model.ort").
inline std::string variant_file_name(const std::string& onnx, const std::string& variant) {
    std::string stem = onnx.substr(0, onnx.size() - std::string_view(".onnx").size());
    if (variant == ort_variant) return stem + ".ort";
    for (const auto& k : variant_kinds)
        if (k.name == variant) return stem + std::string(k.suffix) + ".onnx";
    throw usage_error("--variants", "unknown variant '" + printable(variant) + "'");
}

/// Every file `variants` make of the ONNX files `onnx` (package file names; ort adds required_operators.config),
/// in the order: per variant, per ONNX file. Only names of the package file table come out.
inline std::vector<std::string> variant_files(const std::vector<std::string>& onnx,
                                              const std::vector<std::string>& variants) {
    std::vector<std::string> out;
    for (const auto& v : variants) {
        for (const auto& f : onnx) out.push_back(variant_file_name(f, v));
        if (v == ort_variant) out.emplace_back(ort_operators_file);
    }
    for (const auto& f : out)
        if (role_of(f) != file_role::variant)
            throw usage_error("--variants", "makes " + f + ", which is not a file a package holds");
    return out;
}

}  // namespace modelexport
