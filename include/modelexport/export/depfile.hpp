// modelexport/export/depfile.hpp — Make-style depfiles for ninja (Meson's `depfile:`).
//
// Ninja reads `target: dep dep ...` with Make escaping (ninja 1.11's
// depfile_parser, checked by running ninja in tests/e2e): a space is "\ " (and
// the backslashes right before it are doubled), '#' is "\#", ':' is "\:", '$' is
// "$$"; other backslashes stand for themselves. What that syntax cannot express
// is refused with a clear error instead of producing a depfile that names the
// wrong files: control characters (newline, tab, ...), characters ninja 1.11
// ends a name at (' " & ; * ? | < > ` ^ and the like), a name ending in ':' or in
// an odd number of backslashes. Every file an export read is listed, so
// touching any of them re-runs exactly that export.
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/error.hpp"

#include <cctype>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace modelexport {

/// `path` escaped for a depfile; throws usage_error naming it when it cannot be expressed.
inline std::string depfile_escape(const std::string& path) {
    auto refuse = [&](const std::string& why) {
        return usage_error(path, "cannot be named in a depfile: " + why, "rename it, or export without --depfile");
    };
    std::string out;
    for (std::size_t i = 0; i < path.size();) {
        unsigned char c = static_cast<unsigned char>(path[i]);
        if (c == '\\') {
            std::size_t j = path.find_first_not_of('\\', i);
            if (j == std::string::npos) j = path.size();
            std::size_t k = j - i;
            if (j == path.size() && k % 2) throw refuse("it ends in an odd number of backslashes");
            out.append(j < path.size() && path[j] == ' ' ? 2 * k : k,
                       '\\');  // "\\ " -> 2k+1 backslashes, then the space
            i = j;
            continue;
        }
        if (c < 0x20 || c == 0x7f)
            throw refuse(c == '\n' ? "it contains a newline" : "it contains a control character");
        bool plain = c >= 0x80 || std::isalnum(c) || std::strchr("+,/_.~(){}%=@[]!-", c);
        if (c == ' ' || c == '#' || c == ':')
            out += '\\';
        else if (c == '$')
            out += '$';
        else if (!plain)
            throw refuse(std::string("it contains '") + static_cast<char>(c) +
                         "', which ninja's depfile syntax cannot express");
        out += static_cast<char>(c);
        ++i;
    }
    if (!path.empty() && path.back() == ':') throw refuse("it ends in ':'");
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
