// modelexport/package/reader.hpp — how every command that reads a package opens it
// (verify, validate, inspect, pack, embed, bindings; docs/design.md §11).
//
// A package is a directory of regular files (and the hub layout's onnx/). A
// package file that is a symbolic link, or a FIFO, socket or device, is not
// part of a self-contained package: a link would make pack embed, embed
// .incbin and validate parse a file from outside the package, and a FIFO
// would make a reader block. So a reader opens the package directory once
// and each file through that descriptor (openat, O_NOFOLLOW, O_NONBLOCK), and
// open_package() refuses, up front, any package file name that is there but
// is not a regular file: the commands that read by path afterwards (the ONNX
// loaders, the validator's checks) then see exactly the files checked here.
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/detail/json_file.hpp"
#include "modelexport/error.hpp"
#include "modelexport/package/file_roles.hpp"
#include "modelexport/package/layout.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace modelexport {

namespace detail {

/// Opens `name` in directory `dir_fd` for reading: a regular file, not through a link.
inline unique_fd open_package_file(int dir_fd, const std::string& name) {
    unique_fd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (fd && (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))) fd.reset();
    if (fd) ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/// The hub layout's onnx/ directory under `dir_fd` for a listed name "onnx/<file>" (package/layout.hpp):
/// opened without following links; an invalid fd for any other name with a '/'.
inline unique_fd open_model_subfolder(int dir_fd, const std::string& name) {
    std::string prefix = std::string(hub_onnx_dir) + "/";
    if (name.rfind(prefix, 0) != 0 || name.find('/', prefix.size()) != std::string::npos) return unique_fd();
    return unique_fd(
        ::openat(dir_fd, std::string(hub_onnx_dir).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

/// Why the entry `name` of `dir_fd` is not a package file a reader may open: empty when it is
/// absent or a regular file, else "is a symbolic link; ...", "is a FIFO, not a regular file".
inline std::string package_entry_problem(int dir_fd, const std::string& name) {
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISREG(st.st_mode)) return {};
    if (S_ISLNK(st.st_mode)) return "is a symbolic link; a package file must be a regular file inside the package";
    return "is " + file_kind(st.st_mode) + ", not a regular file";
}

}  // namespace detail

/// A package directory opened for reading.
class package_reader {
public:
    explicit package_reader(fs::path dir)
        : dir_(std::move(dir)), fd_(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
        if (!fd_) throw invalid_input(dir_.string(), "is not a package directory (cannot open it)");
    }

    const fs::path& dir() const { return dir_; }
    int fd() const { return fd_.get(); }

    /// The package file `name` ("config.json", "onnx/model.onnx") opened for reading, or an
    /// invalid fd when it is absent; throws invalid_input when it is there but not a regular file.
    unique_fd open(const std::string& name) const {
        unique_fd sub = detail::open_model_subfolder(fd_.get(), name);
        const std::string base = sub ? name.substr(hub_onnx_dir.size() + 1) : name;
        const int parent = sub ? sub.get() : fd_.get();
        if (base.empty() || base == "." || base == ".." || base.find('/') != std::string::npos)
            throw invalid_input((dir_ / name).string(), "is not a package file name");
        if (std::string problem = detail::package_entry_problem(parent, base); !problem.empty())
            throw invalid_input((dir_ / name).string(), problem);
        return detail::open_package_file(parent, base);
    }

    /// The bytes of the package file `name`, at most `max_bytes`; throws invalid_input when it is
    /// missing, not a regular file, or larger.
    std::string read(const std::string& name, std::uintmax_t max_bytes) const {
        const fs::path shown = dir_ / name;
        unique_fd fd = open(name);
        if (!fd) throw invalid_input(shown.string(), "missing");
        std::string out;
        detail::read_blocks(fd.get(), shown, [&](const char* data, std::size_t n) {
            if (out.size() + n > max_bytes)
                throw invalid_input(shown.string(), "larger than " + std::to_string(max_bytes) + " bytes");
            out.append(data, n);
        });
        return out;
    }

    /// Refuses the package when any name a package file may have (package/files.def, at the root
    /// and under onnx/) is there as a link or a special file, or onnx/ itself is a link.
    void check_entries() const {
        if (std::string problem = detail::package_entry_problem(fd_.get(), std::string(hub_onnx_dir));
            !problem.empty() && problem.find("symbolic link") != std::string::npos)
            throw invalid_input((dir_ / std::string(hub_onnx_dir)).string(),
                                "is a symbolic link; a package's onnx/ must be a directory inside it");
        unique_fd onnx(
            ::openat(fd_.get(), std::string(hub_onnx_dir).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        for (const auto& f : package_files) {
            const std::string name(f.name);
            if (std::string problem = detail::package_entry_problem(fd_.get(), name); !problem.empty())
                throw invalid_input((dir_ / name).string(), problem);
            if (onnx && in_model_folder(f.role))
                if (std::string problem = detail::package_entry_problem(onnx.get(), name); !problem.empty())
                    throw invalid_input((dir_ / std::string(hub_onnx_dir) / name).string(), problem);
        }
    }

private:
    fs::path dir_;
    unique_fd fd_;
};

/// Opens the package in `dir` for a reader: its files are regular files inside it (check_entries).
inline package_reader open_package(const fs::path& dir) {
    package_reader p(dir);
    p.check_entries();
    return p;
}

// The layout of a package as its readers find it: the layout export_metadata.json records, else
// where the ONNX files are. A model present both at the root and under onnx/ is an error naming
// both, never a silent choice: the two loaders would each take a different one.

namespace detail {

inline bool entry_exists(const fs::path& p) {
    std::error_code ec;
    return fs::exists(fs::symlink_status(p, ec));
}

}  // namespace detail

/// The layout of the package in `dir`. A model file (any model-role name of package/files.def)
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
            throw invalid_input(dir.string(),
                                "holds " + std::string(f.name) + " both at the root (" + root.string() +
                                    ") and under onnx/ (" + hub.string() + "); a loader would pick either",
                                "remove one of them (modelexport export --layout flat|hub writes one)");
        if (r) at_root.emplace_back(f.name);
        if (h) under_onnx.push_back(std::string(hub_onnx_dir) + "/" + std::string(f.name));
    }
    if (!at_root.empty() && !under_onnx.empty())
        throw invalid_input(dir.string(),
                            "holds ONNX files both at the root (" + at_root.front() + ") and under onnx/ (" +
                                under_onnx.front() + "); a package has one layout",
                            "re-export it with --layout flat or --layout hub");
    const fs::path meta = dir / "export_metadata.json";
    std::string recorded;
    if (fs::is_regular_file(meta)) {
        try {
            json doc = read_json_object(meta);
            auto l = doc.find("layout");
            if (l != doc.end() && l->is_object() && l->contains("name") && (*l)["name"].is_string())
                recorded = (*l)["name"].get<std::string>();
        } catch (const error&) {  // a damaged metadata file is its readers' to report; the files decide here
        }
    }
    if (recorded == "flat") return package_layout::flat;
    if (recorded == "hub") return package_layout::hub;
    if (!recorded.empty())
        throw invalid_input(meta.string(), "layout.name is '" + printable(recorded) + "', not flat or hub");
    return under_onnx.empty() ? package_layout::flat : package_layout::hub;
}

/// The path of the package file `name` (e.g. "model.onnx") in the package `dir`, by its layout.
inline fs::path package_file_path(const fs::path& dir, std::string_view name) {
    return dir / layout_path(find_layout(dir), name);
}

/// The package directory of the model file `model`: its directory, or for a file under a hub
/// package's onnx/ (no export_metadata.json beside it) the parent, where config and metadata are.
inline fs::path package_dir_of(const fs::path& model) {
    fs::path dir =
        model.has_parent_path() ? model.parent_path() : fs::path(".");  // a bare name is in the current directory
    if (dir.filename() == hub_onnx_dir && !fs::exists(dir / "export_metadata.json") &&
        fs::exists(dir.parent_path() / "config.json"))
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
            for (const auto& sub : fs::directory_iterator(e.path()))
                out.push_back(name + "/" + sub.path().filename().string());
        } else {
            out.push_back(name + "/");
        }
    }
    return out;
}

}  // namespace modelexport
