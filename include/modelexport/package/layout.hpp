// modelexport/package/layout.hpp — where a package keeps its ONNX files (docs/design.md §1 "Layouts").
//
// `flat` (the default) keeps every file at the package root. `hub` puts the ONNX files and their
// external data under `onnx/`, as Hub ONNX repositories do: transformers.js's default `subfolder`
// is 'onnx', and Optimum finds ONNX files by the glob `**/*.onnx`. Every other file (config,
// tokenizer, processor, generation, export_metadata.json) stays at the root in both layouts,
// because both libraries read those from the root.
//
// Writers map a package file name to its path with layout_path(). Readers ask find_layout()
// (package/reader.hpp), which reads the package to tell.
#pragma once

#include "modelexport/error.hpp"
#include "modelexport/package/file_roles.hpp"

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace modelexport {

namespace fs = std::filesystem;

enum class package_layout { flat, hub };

inline std::string to_string(package_layout l) { return l == package_layout::hub ? "hub" : "flat"; }

/// A --layout value; anything but flat and hub is a usage error.
inline package_layout parse_layout(const std::string& name, const std::string& shown = "--layout") {
    if (name == "flat") return package_layout::flat;
    if (name == "hub") return package_layout::hub;
    throw usage_error(shown, "unknown layout '" + name + "'; use flat or hub");
}

/// The package-relative path of the package file `name` in `layout`: model and variant files (ONNX,
/// external data, ORT format) go under onnx/ in hub, everything else stays at the root.
inline std::string layout_path(package_layout layout, std::string_view name) {
    auto role = role_of(name);
    if (layout == package_layout::hub && role && in_model_folder(*role))
        return std::string(hub_onnx_dir) + "/" + std::string(name);
    return std::string(name);
}

}  // namespace modelexport
