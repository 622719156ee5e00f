// modelexport/package/writer.hpp — atomic package assembly.
//
// A package is built in a hidden staging directory beside the target, fsynced,
// then swapped into place with one rename (renameat2 RENAME_EXCHANGE when a
// previous package exists). Readers, ninja and a killed export therefore see
// the old package or the new one, never a mix. A lock file serialises
// concurrent exports to one target; a staging directory left by a killed run
// is removed by the next run once it holds the lock.
//
// Files whose bytes did not change are kept as the previous package's inode
// (hard link from the old package, which modelexport owns), so their mtime
// stays and ninja's restat stops rebuilding what consumes them; all but
// export_metadata.json, which is new after every export.
//
// Trust rules (docs/design.md §11): only regular files with one link, created
// by modelexport, are committed (checked before the swap); nothing is followed
// for writing; a target that is a mount point is refused up front (a rename
// cannot replace it); the lock file is removed when the export ends, whether
// it succeeded, failed or was stopped by a signal. Long target names get hashed
// lock and staging names so they stay within NAME_MAX.
//
// The one subdirectory a package may hold is onnx/ of the hub layout (package/layout.hpp), and it
// holds model files only; every rule above applies to the files in it.
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/error.hpp"
#include "modelexport/package/file_roles.hpp"

#include <fcntl.h>
#include <linux/stat.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace modelexport {

namespace fs = std::filesystem;

namespace detail {

/// The atomic swap; a seam so tests can make it fail as on file systems without RENAME_EXCHANGE.
inline int (*rename_exchange)(const char*, const char*) = [](const char* a, const char* b) {
    return ::renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
};

/// True when `dir` is the root of a mount (rename cannot replace it).
inline bool is_mount_point(const fs::path& dir) {
    struct statx sx {};
    if (::syscall(SYS_statx, AT_FDCWD, dir.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) == 0 &&
        (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
        return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
    struct stat a {
    }, b{};  // old kernels: a different device than the parent
    return ::lstat(dir.c_str(), &a) == 0 && ::stat(dir.parent_path().c_str(), &b) == 0 && a.st_dev != b.st_dev;
}

}  // namespace detail

class package_writer {
public:
    /// `extra_allowed` names files that may sit in an existing target without
    /// being package files (the depfile a build system puts there).
    explicit package_writer(fs::path target, std::set<std::string> extra_allowed = {},
                            const std::function<void(const std::string&)>& on_wait = {})
        : target_(fs::absolute(std::move(target)).lexically_normal()), extra_allowed_(std::move(extra_allowed)) {
        if (target_.filename().empty()) target_ = target_.parent_path();
        base_ = hidden_base(target_.filename().string());
        check_target();
        fs::path parent = target_.parent_path();
        std::error_code ec;
        fs::create_directories(parent, ec);
        if (ec) throw io_error(parent.string(), "cannot create directory: " + ec.message());
        lock(on_wait);
        remove_stale_staging();
        staging_ = parent / ("." + base_ + ".staging-" + std::to_string(::getpid()));
        if (!fs::create_directory(staging_, ec) || ec)
            throw io_error(staging_.string(), "cannot create staging directory: " + (ec ? ec.message() : "exists"));
        fs::permissions(staging_, fs::perms(0755), ec);
    }

    /// True when `real` (a canonical path) is the target, inside it, or one of the
    /// names beside it that an export of `target` owns (its staging directories and
    /// lock): a model source there would be replaced or deleted by the export.
    static bool claims(const fs::path& target, const fs::path& real) {
        fs::path t = fs::weakly_canonical(fs::absolute(target).lexically_normal());
        if (t.filename().empty()) t = t.parent_path();
        if (path_within(real, t)) return true;
        fs::path parent = t.parent_path();
        if (!path_within(real, parent) || real == parent) return false;
        std::string first = std::next(real.begin(), std::distance(parent.begin(), parent.end()))->string();
        std::string base = hidden_base(t.filename().string());
        return first.rfind("." + base + ".staging-", 0) == 0 || first == "." + base + ".lock";
    }

    /// The name the hidden files beside a target are built from: the target's name,
    /// or for a long name (lock and staging names must fit NAME_MAX, 255 bytes) a
    /// prefix and a hash of it.
    static std::string hidden_base(const std::string& name) {
        if (name.size() <= 200) return name;
        sha256 h;
        h.update(name.data(), name.size());
        return name.substr(0, 100) + "~" + h.hex().substr(0, 32);
    }

    ~package_writer() {
        if (!staging_.empty()) remove_tree(staging_);  // also a previous package someone made read-only
        unlock();
    }

    package_writer(const package_writer&) = delete;
    package_writer& operator=(const package_writer&) = delete;

    /// Where files are written before commit().
    const fs::path& staging() const { return staging_; }
    const fs::path& target() const { return target_; }

    /// Makes the staged package the target, atomically. `staged_sha256` gives the
    /// hashes of staged files already known (name -> hex), to avoid reading them again.
    void commit(const std::map<std::string, std::string>& staged_sha256 = {}) {
        check_cancel(target_.string());
        check_staged_files();
        keep_unchanged_files(staged_sha256);
        carry_over_build_files();
        for (const auto& name : staged_files()) {
            unique_fd fd = open_or_throw(staging_ / name, O_RDONLY | O_NOFOLLOW);
            // A package file is 0644 whoever wrote it: an exporter or a user's command under its own
            // umask, onnx's external-data writer (0600). The build files carried over keep theirs.
            if (!extra_allowed_.count(name)) ::fchmod(fd.get(), 0644);
            ::fsync(fd.get());
        }
        if (fs::is_directory(fs::symlink_status(staging_ / std::string(hub_onnx_dir))))
            fsync_directory(staging_ / std::string(hub_onnx_dir));
        fsync_directory(staging_);
        check_cancel(target_.string());  // the last moment a signal or the deadline stops the export
        if (detail::rename_exchange(staging_.c_str(), target_.c_str()) == 0) {
            // staging_ now holds the previous package; the destructor removes it.
        } else if (errno == ENOENT) {
            if (::rename(staging_.c_str(), target_.c_str()) != 0)
                throw io_error(target_.string(),
                               std::string("cannot rename package into place: ") + std::strerror(errno));
            staging_.clear();
        } else if (errno == EXDEV || errno == EBUSY) {
            throw io_error(target_.string(), std::string("cannot swap package into place: ") + std::strerror(errno),
                           "the output directory must not be a mount point; export to a directory inside it");
        } else {
            swap_by_renames(errno);
        }
        fsync_directory(target_.parent_path());
    }

private:
    void check_target() const {
        if (target_.filename().string().size() > 255)
            throw usage_error(target_.string(), "the directory name is longer than 255 bytes");
        std::error_code ec;
        auto st = fs::symlink_status(target_, ec);
        if (!fs::exists(st)) return;
        if (fs::is_directory(st) && detail::is_mount_point(target_))
            throw io_error(
                target_.string(),
                "is a mount point; a package is swapped into place by rename, which cannot replace a mount point",
                "export to a directory inside it, e.g. " + (target_ / "package").string());
        if (!fs::is_directory(st)) throw io_error(target_.string(), "exists and is not a directory");
        for (const auto& e : fs::directory_iterator(target_, ec)) {
            std::string name = e.path().filename().string();
            if (role_of(name) || extra_allowed_.count(name) || is_model_subfolder(e.path())) continue;
            throw io_error(target_.string(),
                           "is not a modelexport package (it holds '" + name + "'); refusing to replace it",
                           "choose an empty or new output directory");
        }
    }

    /// Takes the lock `.NAME.lock` beside the target. The file is removed again
    /// when the export ends (unlock()), so after taking the lock we check that the
    /// path still names the locked inode; if not, whoever held it removed it: retry.
    void lock(const std::function<void(const std::string&)>& on_wait) {
        lock_path_ = target_.parent_path() / ("." + base_ + ".lock");
        bool told = false;
        for (;;) {
            unique_fd fd = open_or_throw(lock_path_, O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
            if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
                if (on_wait && !told) on_wait("waiting for another export to " + target_.string());
                told = true;
                while (::flock(fd.get(), LOCK_EX) != 0) {
                    if (errno != EINTR)
                        throw io_error(lock_path_.string(), std::string("cannot lock: ") + std::strerror(errno));
                    check_cancel(lock_path_.string());  // a signal while waiting
                }
            }
            struct stat held {
            }, now{};
            if (::fstat(fd.get(), &held) == 0 && ::lstat(lock_path_.c_str(), &now) == 0 && held.st_dev == now.st_dev &&
                held.st_ino == now.st_ino) {
                lock_fd_ = std::move(fd);
                return;
            }
        }
    }

    void unlock() {
        if (!lock_fd_) return;
        ::unlink(lock_path_.c_str());  // still ours: nobody else can hold it while we do
        lock_fd_.reset();
    }

    /// True for the hub layout's onnx/ directory (not a link) holding only model files: part of a package.
    static bool is_model_subfolder(const fs::path& p) {
        std::error_code ec;
        if (p.filename() != hub_onnx_dir || !fs::is_directory(fs::symlink_status(p, ec))) return false;
        for (const auto& e : fs::directory_iterator(p, ec)) {
            auto role = role_of(e.path().filename().string());
            if (!role || !in_model_folder(*role)) return false;
        }
        return !ec;
    }

    /// The staged files as package-relative paths; the entries of the hub layout's onnx/ as "onnx/<name>".
    std::vector<std::string> staged_files() const {
        std::vector<std::string> out;
        for (const auto& e : fs::directory_iterator(staging_)) {
            std::string name = e.path().filename().string();
            if (name == hub_onnx_dir && fs::is_directory(e.symlink_status()))
                for (const auto& sub : fs::directory_iterator(e.path()))
                    out.push_back(name + "/" + sub.path().filename().string());
            else
                out.push_back(name);
        }
        return out;
    }

    /// Everything committed is a regular file with one link that this export created.
    void check_staged_files() const {
        for (const auto& name : staged_files()) {
            const fs::path p = staging_ / name;
            struct stat st {};
            if (::lstat(p.c_str(), &st) != 0)
                throw io_error(p.string(), std::string("cannot stat: ") + std::strerror(errno));
            if (!S_ISREG(st.st_mode))
                throw io_error(p.string(),
                               "is " + file_kind(st.st_mode) + "; only regular files are committed to a package");
            if (st.st_nlink != 1)
                throw io_error(p.string(),
                               "has " + std::to_string(st.st_nlink) + " links; a package file may not share its inode");
        }
    }

    /// Where RENAME_EXCHANGE is refused (EINVAL on file systems without it): move the
    /// previous package aside to a staging name, move the new one in, and put the old
    /// one back if that fails. A crash in between leaves no package, never a mix.
    void swap_by_renames(int exchange_errno) {
        fs::path aside = staging_.string() + "-old";
        if (::rename(target_.c_str(), aside.c_str()) != 0) {
            if (errno != ENOENT)
                throw io_error(target_.string(),
                               std::string("cannot swap package into place: ") + std::strerror(exchange_errno) +
                                   ", and cannot move the previous package aside: " + std::strerror(errno));
            aside.clear();
        }
        if (::rename(staging_.c_str(), target_.c_str()) != 0) {
            int e = errno;
            if (!aside.empty()) ::rename(aside.c_str(), target_.c_str());
            throw io_error(target_.string(), std::string("cannot rename package into place: ") + std::strerror(e));
        }
        staging_ = aside;  // the previous package (or nothing), removed by the destructor
    }

    /// With the lock held, any staging directory of this target is a leftover.
    void remove_stale_staging() const {
        std::string prefix = "." + base_ + ".staging-";
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(target_.parent_path(), ec))
            if (e.path().filename().string().rfind(prefix, 0) == 0) remove_tree(e.path());
    }

    /// Only a previous file that is itself a regular file with one link (what an
    /// export made) is kept: a link or shared inode someone put there is not carried on.
    static bool own_regular_file(const fs::path& p, struct stat& st) {
        return ::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1;
    }

    void keep_unchanged_files(const std::map<std::string, std::string>& staged_sha256) const {
        std::error_code ec;
        if (!fs::is_directory(fs::symlink_status(target_, ec))) return;
        for (const auto& name : staged_files()) {
            // export_metadata.json is always the new file, newer than every input the export read:
            // the one output of the Meson template's export step, which stays clean after the
            // `ninja -t restat` of a regeneration however old the kept files are (§7 "restat").
            if (name == "export_metadata.json") continue;
            const fs::path staged = staging_ / name, old = target_ / name;
            struct stat st {};
            if (!own_regular_file(old, st) || static_cast<std::uintmax_t>(st.st_size) != fs::file_size(staged, ec))
                continue;
            auto known = staged_sha256.find(name);
            if (hash_file(old) != (known != staged_sha256.end() ? known->second : hash_file(staged))) continue;
            fs::path tmp = staged.string() + ".keep";
            if (::link(old.c_str(), tmp.c_str()) == 0) ::rename(tmp.c_str(), staged.c_str());
        }
    }

    /// Files the build system keeps beside the package (depfile, generated
    /// headers) move into the new package directory so the swap keeps them;
    /// only regular files with one link (anything else stays with the old package).
    void carry_over_build_files() const {
        std::error_code ec;
        for (const auto& name : extra_allowed_) {
            fs::path old = target_ / name;
            struct stat st {};
            if (own_regular_file(old, st) && !fs::exists(fs::symlink_status(staging_ / name, ec)))
                fs::rename(old, staging_ / name, ec);
        }
    }

    fs::path target_;
    std::set<std::string> extra_allowed_;
    std::string base_;
    fs::path staging_;
    fs::path lock_path_;
    unique_fd lock_fd_;
};

}  // namespace modelexport
