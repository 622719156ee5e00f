// modelexport/package/file_roles.hpp — the one table of files a package may hold (docs/design.md §1).
//
// Adding a file kind is one line here. Readers of this table: the copier
// (what to copy, by role), the validator (which files are required; it does
// not read the "files" of export_metadata.json), package_writer (which names
// belong to a package it may replace), verify and pack (which names are
// package files), and the top-level meson.build and modules/cmake (the
// optional files, at configure time).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelexport {

/// `variant`: a file `export --variants` derives from the model files (model_quantized.onnx, model.ort,
/// ...); it lives where the model files live, but no strategy, source or cache entry provides one.
/// `recipe`: sentence-transformers' description of the pipeline around the model (its modules, the
/// pooling, the normalisation, max_seq_length), which no other file of a package says.
enum class file_role { model, variant, config, tokenizer, processor, generation, recipe, metadata };

inline constexpr std::string_view to_string(file_role r) {
    switch (r) {
        case file_role::model:
            return "model";
        case file_role::variant:
            return "variant";
        case file_role::config:
            return "config";
        case file_role::tokenizer:
            return "tokenizer";
        case file_role::processor:
            return "processor";
        case file_role::generation:
            return "generation";
        case file_role::recipe:
            return "recipe";
        case file_role::metadata:
            return "metadata";
    }
    return "unknown";
}

struct package_file {
    std::string_view name;
    file_role role;
    bool required;
};

/// Every file a package can contain, in the order they are written. The list
/// itself lives in package/files.def so Meson (modules/meson) reads the same one.
inline constexpr package_file package_files[] = {
#define MODELEXPORT_PACKAGE_FILE(name, role, required) {name, file_role::role, required},
#include "modelexport/package/files.def"
#undef MODELEXPORT_PACKAGE_FILE
};

/// The role of a package file name, or nullopt for names a package never holds.
inline constexpr std::optional<file_role> role_of(std::string_view name) {
    for (const auto& f : package_files)
        if (f.name == name) return f.role;
    return std::nullopt;
}

/// Whether files of role `r` live with the model files (under onnx/ in the hub layout).
inline constexpr bool in_model_folder(file_role r) { return r == file_role::model || r == file_role::variant; }

/// The subfolder holding the model files in the hub layout (package/layout.hpp).
inline constexpr std::string_view hub_onnx_dir = "onnx";

/// The table's files `wanted` that are regular files in `dir`, at the root or under onnx/, in the table's order.
template <class Wanted>
std::vector<std::string> present_files(const std::filesystem::path& dir, Wanted&& wanted) {
    std::vector<std::string> out;
    for (const auto& f : package_files) {
        std::string n(f.name);
        if (wanted(f) && (std::filesystem::is_regular_file(dir / n) ||
                          std::filesystem::is_regular_file(dir / std::string(hub_onnx_dir) / n)))
            out.push_back(n);
    }
    return out;
}

/// The ONNX files of a multi-file (encoder-decoder) package present in `dir` (at the root or under
/// onnx/, whichever layout it has), in the table's order; empty for a single-file package.
inline std::vector<std::string> multi_file_model_names(const std::filesystem::path& dir) {
    return present_files(dir, [](const package_file& f) {
        std::string_view n = f.name;
        return f.role == file_role::model && n.size() > 5 && n.substr(n.size() - 5) == ".onnx" && n != "model.onnx";
    });
}

/// `names` comma-separated.
inline std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

/// The same, comma-separated ("" for a single-file package): tools that handle one model.onnx refuse the others with
/// it.
inline std::string multi_file_models(const std::filesystem::path& dir) { return joined(multi_file_model_names(dir)); }

/// The variant files (export --variants) present in `dir`, comma-separated ("" when none).
inline std::string variant_files_in(const std::filesystem::path& dir) {
    return joined(present_files(dir, [](const package_file& f) { return f.role == file_role::variant; }));
}

}  // namespace modelexport
