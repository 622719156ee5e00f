// modelexport/verify.hpp — do a package's files still match export_metadata.json?
#pragma once

#include "modelexport/file_io.hpp"
#include "modelexport/file_roles.hpp"
#include "modelexport/json_file.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace modelexport {

struct verify_problem {
    std::string file;
    std::string kind;  ///< "changed", "missing", "added"
    std::string detail;
};

/// Re-hashes every file listed in the metadata and lists what differs.
/// Throws invalid_input when the metadata itself is missing or malformed.
inline std::vector<verify_problem> verify_package(const fs::path& dir) {
    fs::path meta_path = dir / "export_metadata.json";
    if (!fs::is_regular_file(meta_path)) throw invalid_input(meta_path.string(), "missing; not a modelexport package");
    json meta = read_export_metadata(meta_path);
    std::vector<verify_problem> problems;
    for (const auto& [name, entry] : meta["files"].items()) {
        fs::path p = dir / name;
        if (name.find('/') != std::string::npos || name == ".." || !fs::is_regular_file(p)) {
            problems.push_back({name, "missing", "listed in export_metadata.json"});
            continue;
        }
        auto size = fs::file_size(p);
        std::string expected = entry.value("sha256", "");
        std::string actual = hash_file(p);
        if (actual != expected || size != entry.value("size", std::uintmax_t{0}))
            problems.push_back({name, "changed", "sha256 " + actual + ", expected " + expected});
    }
    for (const auto& e : fs::directory_iterator(dir)) {
        std::string name = e.path().filename().string();
        if (name == "export_metadata.json" || meta["files"].contains(name)) continue;
        if (role_of(name)) problems.push_back({name, "added", "not listed in export_metadata.json"});
    }
    return problems;
}

}  // namespace modelexport
