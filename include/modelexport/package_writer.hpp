// modelexport/package_writer.hpp — atomic package assembly.
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
// stays and ninja's restat stops rebuilding what consumes them.
#pragma once

#include "modelexport/error.hpp"
#include "modelexport/file_io.hpp"
#include "modelexport/file_roles.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>

namespace modelexport {

namespace fs = std::filesystem;

class package_writer {
public:
    /// `extra_allowed` names files that may sit in an existing target without
    /// being package files (the depfile a build system puts there).
    explicit package_writer(fs::path target, std::set<std::string> extra_allowed = {},
                            const std::function<void(const std::string&)>& on_wait = {})
        : target_(fs::absolute(std::move(target)).lexically_normal()), extra_allowed_(std::move(extra_allowed)) {
        if (target_.filename().empty()) target_ = target_.parent_path();
        check_target();
        fs::path parent = target_.parent_path();
        std::error_code ec;
        fs::create_directories(parent, ec);
        if (ec) throw io_error(parent.string(), "cannot create directory: " + ec.message());
        lock(on_wait);
        remove_stale_staging();
        staging_ = parent / ("." + target_.filename().string() + ".staging-" + std::to_string(::getpid()));
        if (!fs::create_directory(staging_, ec) || ec)
            throw io_error(staging_.string(), "cannot create staging directory: " + (ec ? ec.message() : "exists"));
        fs::permissions(staging_, fs::perms(0755), ec);
    }

    package_writer(const package_writer&) = delete;
    package_writer& operator=(const package_writer&) = delete;

    ~package_writer() {
        std::error_code ec;
        if (!staging_.empty()) fs::remove_all(staging_, ec);
    }

    /// Where files are written before commit().
    const fs::path& staging() const { return staging_; }
    const fs::path& target() const { return target_; }

    /// Makes the staged package the target, atomically. `staged_sha256` gives the
    /// hashes of staged files already known (name -> hex), to avoid reading them again.
    void commit(const std::map<std::string, std::string>& staged_sha256 = {}) {
        keep_unchanged_files(staged_sha256);
        carry_over_build_files();
        for (const auto& e : fs::directory_iterator(staging_)) {
            unique_fd fd = open_or_throw(e.path(), O_RDONLY);
            ::fsync(fd.get());
        }
        fsync_directory(staging_);
        if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) == 0) {
            // staging_ now holds the previous package; the destructor removes it.
        } else if (errno == ENOENT) {
            if (::rename(staging_.c_str(), target_.c_str()) != 0)
                throw io_error(target_.string(), std::string("cannot rename package into place: ") + std::strerror(errno));
            staging_.clear();
        } else {
            throw io_error(target_.string(), std::string("cannot swap package into place: ") + std::strerror(errno));
        }
        fsync_directory(target_.parent_path());
    }

private:
    void check_target() const {
        std::error_code ec;
        auto st = fs::symlink_status(target_, ec);
        if (!fs::exists(st)) return;
        if (!fs::is_directory(st)) throw io_error(target_.string(), "exists and is not a directory");
        for (const auto& e : fs::directory_iterator(target_, ec)) {
            std::string name = e.path().filename().string();
            if (role_of(name) || extra_allowed_.count(name)) continue;
            throw io_error(target_.string(), "is not a modelexport package (it holds '" + name + "'); refusing to replace it",
                           "choose an empty or new output directory");
        }
    }

    void lock(const std::function<void(const std::string&)>& on_wait) {
        fs::path lock_path = target_.parent_path() / ("." + target_.filename().string() + ".lock");
        lock_fd_ = open_or_throw(lock_path, O_RDWR | O_CREAT, 0644);
        if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) == 0) return;
        if (on_wait) on_wait("waiting for another export to " + target_.string());
        while (::flock(lock_fd_.get(), LOCK_EX) != 0)
            if (errno != EINTR) throw io_error(lock_path.string(), std::string("cannot lock: ") + std::strerror(errno));
    }

    /// With the lock held, any staging directory of this target is a leftover.
    void remove_stale_staging() const {
        std::string prefix = "." + target_.filename().string() + ".staging-";
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(target_.parent_path(), ec))
            if (e.path().filename().string().rfind(prefix, 0) == 0) fs::remove_all(e.path(), ec);
    }

    void keep_unchanged_files(const std::map<std::string, std::string>& staged_sha256) const {
        std::error_code ec;
        if (!fs::is_directory(target_, ec)) return;
        for (const auto& e : fs::directory_iterator(staging_)) {
            fs::path old = target_ / e.path().filename();
            if (!fs::is_regular_file(old, ec) || fs::file_size(old, ec) != fs::file_size(e.path(), ec)) continue;
            auto known = staged_sha256.find(e.path().filename().string());
            if (hash_file(old) != (known != staged_sha256.end() ? known->second : hash_file(e.path()))) continue;
            fs::path tmp = e.path().string() + ".keep";
            if (::link(old.c_str(), tmp.c_str()) == 0) ::rename(tmp.c_str(), e.path().c_str());
        }
    }

    /// Files the build system keeps beside the package (depfile, generated
    /// headers) move into the new package directory so the swap keeps them.
    void carry_over_build_files() const {
        std::error_code ec;
        for (const auto& name : extra_allowed_) {
            fs::path old = target_ / name;
            if (fs::exists(fs::symlink_status(old, ec)) && !fs::exists(staging_ / name, ec)) fs::rename(old, staging_ / name, ec);
        }
    }

    fs::path target_;
    std::set<std::string> extra_allowed_;
    fs::path staging_;
    unique_fd lock_fd_;
};

}  // namespace modelexport
