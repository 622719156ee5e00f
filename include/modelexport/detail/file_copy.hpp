// modelexport/detail/file_copy.hpp — byte-exact copies, hashed in the same read.
//
// Copies go through POSIX file descriptors because packages must be fsync'ed
// before they are renamed into place (std::ofstream cannot fsync). Reflinks
// (FICLONE) are tried first: copy-on-write clones share no writable data with
// the source, so they are safe even from the Hugging Face cache. Hard links to
// sources are never made: editing the source would silently edit the package.
#pragma once

#include "modelexport/detail/cancel.hpp"
#include "modelexport/detail/file_io.hpp"
#include "modelexport/detail/sha256.hpp"
#include "modelexport/error.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

namespace modelexport {

namespace detail {

constexpr std::uintmax_t parallel_copy_threshold = 64u << 20;

/// Copies `size` bytes in the kernel. Returns false, having written nothing, when
/// the file systems do not support copy_file_range (the caller falls back).
inline bool kernel_copy(int in, int out, std::uintmax_t size, const fs::path& dst) {
    std::uintmax_t done = 0;
    while (done < size) {
        check_cancel(dst.string());  // chunks of 64 MiB: a signal or the deadline is noticed within one
        ssize_t n = ::copy_file_range(in, nullptr, out, nullptr,
                                      static_cast<std::size_t>(std::min<std::uintmax_t>(size - done, 64u << 20)), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (done == 0 && (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP))
                return false;
            throw io_error(dst.string(), std::string("copy failed: ") + std::strerror(errno));
        }
        if (n == 0) throw io_error(dst.string(), "the source became shorter while it was copied");
        done += static_cast<std::uintmax_t>(n);
    }
    return true;
}

}  // namespace detail

namespace detail {
/// `durable`: fsync now; otherwise only start the write-back (sync_file_range), for a
/// caller that fsyncs the file later, before it renames it into place (cache/export_cache.hpp).
inline void finish_copy(int fd, const fs::path& dst, bool durable) {
    if (durable)
        fsync_or_throw(fd, dst);
    else
        ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}
}  // namespace detail

/// Copies `src` to `dst` byte for byte with mode 0644, hashing in the same
/// read. Tries a reflink first; `known_sha256` (e.g. an LFS blob name) skips
/// the hashing read when the clone succeeded. Without `durable` the caller fsyncs `dst`.
inline written_file copy_file_hashed(const fs::path& src, const fs::path& dst, const std::string& known_sha256 = {},
                                     bool durable = true) {
    unique_fd in = open_or_throw(src, O_RDONLY);
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) throw invalid_input(src.string(), "is not a regular file");
    unique_fd out = create_file(dst);  // a new inode, mode 0644 whatever the umask or source said
    written_file result;
    if (::ioctl(out.get(), FICLONE, in.get()) == 0) {
        detail::finish_copy(out.get(), dst, durable);
        result.size = static_cast<std::uintmax_t>(st.st_size);
        result.sha256 = known_sha256.empty() ? hash_file(dst) : known_sha256;
        return result;
    }
    // Large files: the kernel copies (copy_file_range, no bytes through user space)
    // while a second thread hashes the source, so the copy costs about the longer of
    // the two instead of their sum. Small files, or file systems that refuse
    // copy_file_range, take the single read-hash-write loop.
    if (static_cast<std::uintmax_t>(st.st_size) >= detail::parallel_copy_threshold) {
        std::string hash_error;
        std::string digest;
        std::atomic<bool> stop{false};
        std::thread hasher([&] {
            try {
                unique_fd again = open_or_throw(src, O_RDONLY);
                sha256 h;
                detail::read_blocks(again.get(), src, [&](const char* data, std::size_t n) {
                    if (stop) throw io_error(src.string(), "stopped");
                    h.update(data, n);
                });
                digest = h.hex();
            } catch (const std::exception& e) {
                hash_error = e.what();
            }
        });
        // The hasher must be joined whatever happens to the copy (a joinable
        // std::thread destroyed by an exception calls std::terminate).
        struct joiner {
            std::thread& t;
            std::atomic<bool>& stop;
            ~joiner() {
                stop = true;
                if (t.joinable()) t.join();
            }
        } join_hasher{hasher, stop};
        bool copied = detail::kernel_copy(in.get(), out.get(), static_cast<std::uintmax_t>(st.st_size), dst);
        // The copy outruns the hash (about 3 GB/s against 1.4 GB/s here), so the
        // write-back and fsync run while the hasher finishes rather than after it.
        if (copied) detail::finish_copy(out.get(), dst, durable);
        hasher.join();
        check_cancel(src.string());
        if (!hash_error.empty()) throw io_error(src.string(), hash_error);
        if (copied) return {static_cast<std::uintmax_t>(st.st_size), digest};
        ::lseek(in.get(), 0, SEEK_SET);
        ::ftruncate(out.get(), 0);
    }
    sha256 h;
    detail::read_blocks(in.get(), src, [&](const char* data, std::size_t n) {
        h.update(data, n);
        detail::write_all(out.get(), data, n, dst);
        result.size += n;
    });
    detail::finish_copy(out.get(), dst, durable);
    result.sha256 = h.hex();
    return result;
}

/// Copies `src` to `dst` as copy_file_hashed does, without reading it to hash: for a file whose
/// SHA-256 the caller verified before and remembers under its stat (a local cache object,
/// cache/export_cache.hpp). Returns `sha256` as the copy's. A hit then costs one copy, like `cp`.
inline written_file copy_file_known(const fs::path& src, const fs::path& dst, const std::string& sha256,
                                    bool durable = true) {
    unique_fd in = open_or_throw(src, O_RDONLY);
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) throw invalid_input(src.string(), "is not a regular file");
    unique_fd out = create_file(dst);
    const auto size = static_cast<std::uintmax_t>(st.st_size);
    if (::ioctl(out.get(), FICLONE, in.get()) != 0 && !detail::kernel_copy(in.get(), out.get(), size, dst))
        detail::read_blocks(in.get(), src,
                            [&](const char* data, std::size_t n) { detail::write_all(out.get(), data, n, dst); });
    detail::finish_copy(out.get(), dst, durable);
    return {size, sha256};
}

}  // namespace modelexport
