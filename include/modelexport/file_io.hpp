// modelexport/file_io.hpp — POSIX file descriptors: owned fds, whole writes, fsync, block reads,
// hashing a file, writing a file (only when changed).
//
// Package files go through descriptors, not streams, because they must be fsync'ed before
// they are renamed into place (std::ofstream cannot fsync; docs/design.md §1).
#pragma once

#include "modelexport/error.hpp"
#include "modelexport/sha256.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace modelexport {

namespace fs = std::filesystem;

/// An owned file descriptor.
class unique_fd {
public:
    explicit unique_fd(int fd = -1) : fd_(fd) {}
    unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        reset(o.release());
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() { int f = fd_; fd_ = -1; return f; }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_;
};

inline unique_fd open_or_throw(const fs::path& p, int flags, mode_t mode = 0644) {
    unique_fd fd(::open(p.c_str(), flags | O_CLOEXEC, mode));
    if (!fd) {
        int e = errno;
        if (flags & (O_WRONLY | O_RDWR)) throw io_error(p.string(), std::string("cannot write: ") + std::strerror(e));
        throw io_error(p.string(), std::string("cannot read: ") + std::strerror(e));
    }
    return fd;
}

namespace detail {

inline void write_all(int fd, const char* data, std::size_t n, const fs::path& p) {
    while (n > 0) {
        ssize_t w = ::write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw io_error(p.string(), std::string("write failed: ") + std::strerror(errno));
        }
        data += w;
        n -= static_cast<std::size_t>(w);
    }
}

inline void fsync_or_throw(int fd, const fs::path& p) {
    if (::fsync(fd) != 0) throw io_error(p.string(), std::string("fsync failed: ") + std::strerror(errno));
}

constexpr std::size_t copy_block = 1u << 20;

/// Reads `fd` to its end in 1 MiB blocks, handing each block to `block(data, n)`.
template <class Block>
void read_blocks(int fd, const fs::path& p, Block&& block) {
    std::vector<char> buf(copy_block);
    for (;;) {
        ssize_t r = ::read(fd, buf.data(), buf.size());
        if (r < 0) {
            if (errno == EINTR) continue;
            throw io_error(p.string(), std::string("read failed: ") + std::strerror(errno));
        }
        if (r == 0) return;
        block(buf.data(), static_cast<std::size_t>(r));
    }
}

}  // namespace detail

/// Hex SHA-256 of a file, read once.
inline std::string hash_file(const fs::path& p) {
    unique_fd in = open_or_throw(p, O_RDONLY);
    sha256 h;
    detail::read_blocks(in.get(), p, [&](const char* data, std::size_t n) { h.update(data, n); });
    return h.hex();
}

/// What was written: size and SHA-256 of the bytes.
struct written_file {
    std::uintmax_t size = 0;
    std::string sha256;
};

/// Writes `bytes` to `dst` (mode 0644) and fsyncs it.
inline written_file write_file(const fs::path& dst, const std::string& bytes) {
    unique_fd out = open_or_throw(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    detail::write_all(out.get(), bytes.data(), bytes.size(), dst);
    ::fchmod(out.get(), 0644);
    detail::fsync_or_throw(out.get(), dst);
    return {bytes.size(), sha256_hex(bytes)};
}

/// Writes `bytes` unless `dst` already holds exactly them: an unchanged
/// generated source keeps its mtime, so ninja's restat rebuilds nothing after it.
inline void write_file_if_changed(const fs::path& dst, const std::string& bytes) {
    std::error_code ec;
    if (fs::is_regular_file(dst, ec) && fs::file_size(dst, ec) == bytes.size()) {
        if (hash_file(dst) == sha256_hex(bytes)) return;
    }
    write_file(dst, bytes);
}

/// fsyncs a directory so renames and new entries in it are durable.
inline void fsync_directory(const fs::path& dir) {
    unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd) ::fsync(fd.get());
}

}  // namespace modelexport
