// modelexport/export/final_file.hpp — hashing the exporter's ONNX file while the exporter checks it.
//
// htp_exporter.py writes model.onnx, then spends its last seconds on the reference check, which
// only reads the file. It says so with one line (final_file_line, then the file's name); from that
// line this side hashes the file and makes it durable in a thread of its own, so the package's
// hash and the commit's fsync are already done when the exporter exits (docs/design.md §3). The
// hash is kept only if the exporter succeeded and the file is still a regular file of one link
// with the inode, size, modification and change times it had when hashing began; otherwise the
// file is hashed again where it always was.
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/export_options.hpp"

#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <string>

namespace modelexport {

/// The line the exporter prints before its reference check; the file's name follows it. The same
/// text is FINAL_FILE_LINE in tools/htp_exporter.py.
inline constexpr const char* final_file_line = "htp: final file: ";

class final_file_hash {
public:
    /// Hashes `stage`/`name` once the exporter's line names it.
    final_file_hash(fs::path stage, std::string name) : stage_(std::move(stage)), name_(std::move(name)) {}

    final_file_hash(const final_file_hash&) = delete;
    final_file_hash& operator=(const final_file_hash&) = delete;
    /// An export that failed or was stopped does not wait for the rest of the hash.
    ~final_file_hash() {
        stop_ = true;
        if (running_.valid()) running_.wait();
    }

    /// `opt` with its exporter_line also watched for the exporter's line.
    export_options watching(const export_options& opt) {
        export_options watched = opt;
        watched.exporter_line = [this, shown = opt.exporter_line](const std::string& line, bool err) {
            on_line(line);
            if (shown) shown(line, err);
        };
        return watched;
    }

    /// Every line the exporter writes goes through here (from the process reader's thread).
    void on_line(const std::string& line) {
        if (line != final_file_line + name_) return;
        std::lock_guard<std::mutex> lock(mutex_);
        if (running_.valid()) return;
        running_ = std::async(std::launch::async, [this] { return hash_and_sync(stage_ / name_); });
    }

    /// The hash, if it was computed and the file is still the one hashed (same inode, size, modification
    /// and change times, a regular file of one link); asked once the exporter succeeded and its file was adopted.
    std::optional<std::string> result() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!running_.valid()) return std::nullopt;
        std::optional<hashed> h = running_.get();
        if (!h || identity_of(stage_ / name_) != h->id) return std::nullopt;
        return h->sha256;
    }

private:
    /// The change time too: a write that restores the modification time (utime) still moves it.
    struct identity {
        ino_t inode = 0;
        off_t size = 0;
        timespec mtime{}, ctime{};
        bool operator==(const identity& o) const {
            auto same = [](const timespec& a, const timespec& b) {
                return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
            };
            return inode == o.inode && size == o.size && same(mtime, o.mtime) && same(ctime, o.ctime);
        }
        bool operator!=(const identity& o) const { return !(*this == o); }
    };
    struct hashed {
        identity id;
        std::string sha256;
    };

    /// None for a link or a file of several names: the package copies those (their bytes may change).
    static std::optional<identity> identity_of(const fs::path& p) {
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) return std::nullopt;
        return identity{st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
    }

    /// Hash, then fsync: the commit's own fsync of the file then has nothing left to write. Any failure
    /// leaves the file to the usual path, which reports it.
    std::optional<hashed> hash_and_sync(const fs::path& p) const {
        try {
            std::optional<identity> before = identity_of(p);
            if (!before) return std::nullopt;
            unique_fd fd = open_or_throw(p, O_RDONLY | O_NOFOLLOW);
            struct stat opened {};
            if (::fstat(fd.get(), &opened) != 0 || opened.st_ino != before->inode) return std::nullopt;
            sha256 h;
            detail::read_blocks(fd.get(), p, [&](const char* data, std::size_t n) {
                if (stop_) throw stopped{};
                h.update(data, n);
            });
            ::fsync(fd.get());
            if (identity_of(p) != before) return std::nullopt;
            return hashed{*before, h.hex()};
        } catch (const std::exception&) {  // stopped, cancelled, unreadable
            return std::nullopt;
        }
    }

    struct stopped : std::exception {};

    fs::path stage_;
    std::string name_;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::future<std::optional<hashed>> running_;
};

}  // namespace modelexport
