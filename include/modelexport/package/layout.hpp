// modelexport/layout.hpp — where a package keeps its ONNX files (docs/design.md §1 "Layouts").
//
// `flat` (the default) keeps every file at the package root. `hub` puts the ONNX files and their
// external data under `onnx/`, as Hub ONNX repositories do: transformers.js's default `subfolder`
// is 'onnx', and Optimum finds ONNX files by the glob `**/*.onnx`. Every other file (config,
// tokenizer, processor, generation, export_metadata.json) stays at the root in both layouts,
// because both libraries read those from the root.
//
// Writers map a package file name to its path with layout_path(). Readers ask
// find_layout(): the layout export_metadata.json records, else where the ONNX files are. A model
// present both at the root and under onnx/ is an error naming both, never a silent choice: the
// two loaders would each take a different one.
#pragma once

#include "modelexport/error.hpp"
#include "modelexport/file_roles.hpp"
#include "modelexport/json_file.hpp"

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
    if (layout == package_layout::hub && role && in_model_folder(*role)) return std::string(hub_onnx_dir) + "/" + std::string(name);
    return std::string(name);
}

namespace detail {

inline bool entry_exists(const fs::path& p) {
    std::error_code ec;
    return fs::exists(fs::symlink_status(p, ec));
}

}  // namespace detail

/// The layout of the package in `dir`. A model file (any model-role name of package_files.def)
/// present both at the root and under onnx/ is invalid_input naming both paths; so is a package
/// with some model files at the root and others under onnx/. The layout export_metadata.json
/// records (`layout.name`) wins when present; a package without metadata (or with metadata that
/// predates layouts) is read where its files are.
inline package_layout find_layout(const fs::path& dir) {
    std::vector<std::string> at_root, under_onnx;
    for (const auto& f : package_files) {
        if (f.role != file_role::model) continue;
        const fs::path root = dir / std::string(f.name), hub = dir / std::string(hub_onnx_dir) / std::string(f.name);
        bool r = detail::entry_exists(root), h = detail::entry_exists(hub);
        if (r && h)
            throw invalid_input(dir.string(), "holds " + std::string(f.name) + " both at the root (" + root.string() + ") and under onnx/ (" +
                                                  hub.string() + "); a loader would pick either",
                                "remove one of them (modelexport export --layout flat|hub writes one)");
        if (r) at_root.emplace_back(f.name);
        if (h) under_onnx.push_back(std::string(hub_onnx_dir) + "/" + std::string(f.name));
    }
    if (!at_root.empty() && !under_onnx.empty())
        throw invalid_input(dir.string(), "holds ONNX files both at the root (" + at_root.front() + ") and under onnx/ (" + under_onnx.front() +
                                              "); a package has one layout",
                            "re-export it with --layout flat or --layout hub");
    const fs::path meta = dir / "export_metadata.json";
    std::string recorded;
    if (fs::is_regular_file(meta)) {
        try {
            json doc = read_json_object(meta);
            auto l = doc.find("layout");
            if (l != doc.end() && l->is_object() && l->contains("name") && (*l)["name"].is_string()) recorded = (*l)["name"].get<std::string>();
        } catch (const error&) {  // a damaged metadata file is its readers' to report; the files decide here
        }
    }
    if (recorded == "flat") return package_layout::flat;
    if (recorded == "hub") return package_layout::hub;
    if (!recorded.empty()) throw invalid_input(meta.string(), "layout.name is '" + printable(recorded) + "', not flat or hub");
    return under_onnx.empty() ? package_layout::flat : package_layout::hub;
}

/// The path of the package file `name` (e.g. "model.onnx") in the package `dir`, by its layout.
inline fs::path package_file_path(const fs::path& dir, std::string_view name) { return dir / layout_path(find_layout(dir), name); }

/// The package directory of the model file `model`: its directory, or for a file under a hub
/// package's onnx/ (no export_metadata.json beside it) the parent, where config and metadata are.
inline fs::path package_dir_of(const fs::path& model) {
    fs::path dir = model.has_parent_path() ? model.parent_path() : fs::path(".");  // a bare name is in the current directory
    if (dir.filename() == hub_onnx_dir && !fs::exists(dir / "export_metadata.json") && fs::exists(dir.parent_path() / "config.json"))
        return dir.parent_path();
    return dir;
}

/// The package's files as package-relative paths, the onnx/ subfolder included ("onnx/model.onnx");
/// a directory other than onnx/ is listed as "name/" so that a check against declared files sees it.
inline std::vector<std::string> package_entries(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        std::string name = e.path().filename().string();
        if (!fs::is_directory(e.symlink_status())) {
            out.push_back(name);
        } else if (name == hub_onnx_dir) {
            for (const auto& sub : fs::directory_iterator(e.path())) out.push_back(name + "/" + sub.path().filename().string());
        } else {
            out.push_back(name + "/");
        }
    }
    return out;
}

}  // namespace modelexport
