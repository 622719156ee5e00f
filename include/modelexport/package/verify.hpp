// modelexport/package/verify.hpp — do a package's files still match export_metadata.json?
//
// A re-export may commit (swap the package directory, package/writer.hpp)
// while verify reads. So verify opens the directory once and reads the
// metadata and every file through that descriptor (openat): it sees one
// directory's contents even if the name is swapped meanwhile. If the name no
// longer refers to the directory it read (a commit happened), it reads again,
// from the new directory; a package is never reported changed because it was
// replaced mid-read.
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/detail/json_file.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/package/file_roles.hpp"
#include "modelexport/package/reader.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace modelexport {

struct verify_problem {
    std::string file;
    std::string kind;  ///< "changed", "missing", "added"
    std::string detail;
};

namespace detail {

/// The entry names of the directory `dir_fd`.
inline std::vector<std::string> list_directory(int dir_fd, const fs::path& dir) {
    std::vector<std::string> names;
    int fd = ::dup(dir_fd);
    DIR* d = fd >= 0 ? ::fdopendir(fd) : nullptr;
    if (!d) {
        if (fd >= 0) ::close(fd);
        throw io_error(dir.string(), "cannot list the directory");
    }
    ::rewinddir(d);
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    return names;
}

/// Every entry under the directory `dir_fd`, recursively, as paths relative to it ("onnx/model.onnx").
/// Subdirectories are opened through their parent's descriptor without following links; an empty
/// subdirectory is listed as "name/" so that it counts too.
inline void list_tree(int dir_fd, const fs::path& dir, const std::string& prefix, int depth,
                      std::vector<std::string>& out) {
    for (const auto& name : list_directory(dir_fd, dir)) {
        unique_fd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub || depth >= 16) {  // a file, a link, a special file (or a tree too deep to walk): one entry
            out.push_back(prefix + name);
            continue;
        }
        std::size_t before = out.size();
        list_tree(sub.get(), dir / name, prefix + name + "/", depth + 1, out);
        if (out.size() == before) out.push_back(prefix + name + "/");
    }
}

inline bool same_inode(const struct stat& a, const struct stat& b) {
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/// One consistent pass over the directory open as `dir_fd`.
inline std::vector<verify_problem> verify_directory(int dir_fd, const fs::path& dir,
                                                    const std::vector<std::string>& ignore) {
    fs::path meta_path = dir / "export_metadata.json";
    unique_fd meta_fd = open_package_file(dir_fd, "export_metadata.json");
    if (!meta_fd) throw invalid_input(meta_path.string(), "missing; not a modelexport package");
    std::string text;
    constexpr std::uintmax_t max_meta = 256u << 20;
    read_blocks(meta_fd.get(), meta_path, [&](const char* data, std::size_t n) {
        if (text.size() + n > max_meta)
            throw invalid_input(meta_path.string(), "larger than " + std::to_string(max_meta) + " bytes");
        text.append(data, n);
    });
    json meta = parse_export_metadata(text, meta_path.string());
    std::vector<verify_problem> problems;
    for (const auto& [name, entry] : meta["files"].items()) {
        // A listed name is one component, or "onnx/<file>" of the hub layout read through onnx/'s descriptor.
        unique_fd sub = open_model_subfolder(dir_fd, name);
        const int parent = sub ? sub.get() : dir_fd;
        const std::string base = sub ? name.substr(hub_onnx_dir.size() + 1) : name;
        unique_fd fd;
        if (base.find('/') == std::string::npos && base != ".." && base != "." && !base.empty() &&
            base.find('\0') == std::string::npos)
            fd = open_package_file(parent, base);
        if (!fd) {
            struct stat st {};  // there but not a regular file (a FIFO, a link): say what it is
            bool there = base.find('/') == std::string::npos && base.find('\0') == std::string::npos &&
                         ::fstatat(parent, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode);
            problems.push_back(
                {name, "missing",
                 there ? "is " + file_kind(st.st_mode) + ", not a regular file" : "listed in export_metadata.json"});
            continue;
        }
        sha256 h;
        std::uintmax_t size = 0;
        read_blocks(fd.get(), dir / name, [&](const char* data, std::size_t n) {
            h.update(data, n);
            size += n;
        });
        std::string expected = entry["sha256"].get<std::string>(), actual = h.hex();
        if (actual != expected || size != entry["size"].get<std::uintmax_t>())
            problems.push_back({name, "changed", "sha256 " + actual + ", expected " + expected});
    }
    // Any other entry, at any depth, is added: a loader may pick it up (transformers.js loads
    // onnx/model.onnx first, model_quantized.onnx on request), so it is never "not a package file".
    std::vector<std::string> entries;
    list_tree(dir_fd, dir, "", 0, entries);
    std::sort(entries.begin(), entries.end());
    for (const auto& name : entries) {
        if (name == "export_metadata.json" || meta["files"].contains(name)) continue;
        if (std::find(ignore.begin(), ignore.end(), name) != ignore.end()) continue;
        problems.push_back({name, "added", "not listed in export_metadata.json"});
    }
    return problems;
}

}  // namespace detail

/// Re-hashes every file listed in the metadata and lists what differs, and every entry the
/// metadata does not list (recursively). `ignore` names build files that live in the package
/// directory on purpose: the Meson template's depfile `<name>-package.d` and bindings header
/// `<name>_model.hpp` (export --keep); they are not recorded in the package, so a package's
/// bytes do not depend on how a build declared it (docs/design.md §7).
/// Throws invalid_input when the metadata itself is missing or malformed.
MODELEXPORT_ENTRY std::vector<verify_problem> verify_package(const fs::path& dir,
                                                             const std::vector<std::string>& ignore = {});

#if MODELEXPORT_DEFINES(PACKAGE)
MODELEXPORT_ENTRY std::vector<verify_problem> verify_package(const fs::path& dir,
                                                             const std::vector<std::string>& ignore) {
    for (int attempt = 0;; ++attempt) {
        unique_fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir_fd) throw invalid_input((dir / "export_metadata.json").string(), "missing; not a modelexport package");
        struct stat before {};
        ::fstat(dir_fd.get(), &before);
        std::vector<verify_problem> problems;
        std::exception_ptr failure;
        try {
            problems = detail::verify_directory(dir_fd.get(), dir, ignore);
        } catch (const error&) {
            failure = std::current_exception();
        }
        // Did a commit swap the package while we read? Then read the new one
        // (a few times at most: a package re-exported continuously is reported as read).
        struct stat now {};
        bool swapped = ::stat(dir.c_str(), &now) != 0 || !detail::same_inode(before, now);
        if (swapped && attempt < 3) continue;
        if (failure) std::rethrow_exception(failure);
        return problems;
    }
}
#endif

}  // namespace modelexport
