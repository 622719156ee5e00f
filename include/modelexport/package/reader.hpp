// modelexport/package_reader.hpp — how every command that reads a package opens it
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

#include "modelexport/error.hpp"
#include "modelexport/file_io.hpp"
#include "modelexport/file_roles.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

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

/// The hub layout's onnx/ directory under `dir_fd` for a listed name "onnx/<file>" (layout.hpp):
/// opened without following links; an invalid fd for any other name with a '/'.
inline unique_fd open_model_subfolder(int dir_fd, const std::string& name) {
    std::string prefix = std::string(hub_onnx_dir) + "/";
    if (name.rfind(prefix, 0) != 0 || name.find('/', prefix.size()) != std::string::npos) return unique_fd();
    return unique_fd(::openat(dir_fd, std::string(hub_onnx_dir).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
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
    explicit package_reader(fs::path dir) : dir_(std::move(dir)), fd_(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
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
            if (out.size() + n > max_bytes) throw invalid_input(shown.string(), "larger than " + std::to_string(max_bytes) + " bytes");
            out.append(data, n);
        });
        return out;
    }

    /// Refuses the package when any name a package file may have (package_files.def, at the root
    /// and under onnx/) is there as a link or a special file, or onnx/ itself is a link.
    void check_entries() const {
        if (std::string problem = detail::package_entry_problem(fd_.get(), std::string(hub_onnx_dir));
            !problem.empty() && problem.find("symbolic link") != std::string::npos)
            throw invalid_input((dir_ / std::string(hub_onnx_dir)).string(), "is a symbolic link; a package's onnx/ must be a directory inside it");
        unique_fd onnx(::openat(fd_.get(), std::string(hub_onnx_dir).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
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

}  // namespace modelexport
