// modelexport/depfile.hpp — Make-style depfiles for ninja (Meson's `depfile:`).
//
// Ninja reads `target: dep dep ...` with Make escaping: a space is "\ ", '#'
// is "\#" and '$' is "$$". Every file an export read is listed, so touching
// any of them re-runs exactly that export.
#pragma once

#include "modelexport/file_io.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace modelexport {

inline std::string depfile_escape(const std::string& path) {
    std::string out;
    for (char c : path) {
        if (c == ' ' || c == '#') out += '\\';
        if (c == '$') out += '$';
        out += c;
    }
    return out;
}

inline std::string depfile_text(const std::string& target, const std::vector<std::filesystem::path>& inputs) {
    std::string text = depfile_escape(target) + ":";
    for (const auto& p : inputs) text += " \\\n  " + depfile_escape(p.string());
    return text + "\n";
}

inline void write_depfile(const std::filesystem::path& depfile, const std::string& target,
                          const std::vector<std::filesystem::path>& inputs) {
    write_file(depfile, depfile_text(target, inputs));
}

}  // namespace modelexport
