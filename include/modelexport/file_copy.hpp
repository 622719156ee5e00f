// modelexport/file_copy.hpp — byte-exact copies, hashed in the same read.
//
// Copies go through POSIX file descriptors because packages must be fsync'ed
// before they are renamed into place (std::ofstream cannot fsync). Reflinks
// (FICLONE) are tried first: copy-on-write clones share no writable data with
// the source, so they are safe even from the Hugging Face cache. Hard links to
// sources are never made: editing the source would silently edit the package.
#pragma once

#include "modelexport/cancel.hpp"
#include "modelexport/error.hpp"

#include <openssl/evp.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace modelexport {

namespace fs = std::filesystem;

/// Streaming SHA-256 over OpenSSL's EVP interface.
class sha256 {
public:
    sha256() : ctx_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
        if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) throw std::runtime_error("OpenSSL SHA-256 unavailable");
    }
    void update(const void* data, std::size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
    /// Lower-case hex digest; the object cannot be updated afterwards.
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        EVP_DigestFinal_ex(ctx_.get(), md, &len);
        static const char* digits = "0123456789abcdef";
        std::string out;
        for (unsigned i = 0; i < len; ++i) {
            out += digits[md[i] >> 4];
            out += digits[md[i] & 15];
        }
        return out;
    }

private:
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

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

/// True when `p` is `folder` or below it (both canonical or both lexical paths; by components).
inline bool path_within(const fs::path& p, const fs::path& folder) {
    auto r = p.begin();
    for (auto f = folder.begin(); f != folder.end(); ++f, ++r)
        if (r == p.end() || *r != *f) return false;
    return true;
}

/// What a file that is not a regular file is, for messages: "a FIFO", "a directory", ...
inline std::string file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISLNK(mode)) return "a symbolic link";
    if (S_ISREG(mode)) return "a regular file";
    return "a special file";
}

/// Why `p` (links followed) cannot be read as a regular file: "missing", "is a FIFO,
/// not a regular file", ...; empty when it can. For readers that report rather than throw.
inline std::string regular_file_problem(const fs::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return "missing";
    return S_ISREG(st.st_mode) ? std::string() : "is " + file_kind(st.st_mode) + ", not a regular file";
}

/// The one way modelexport opens a file (docs/design.md §11): every reader and
/// writer goes through here, so no open ever blocks on a FIFO or a device and
/// nothing but a regular file is read or written. The path is checked with
/// stat() first (a device is never opened), opened with O_NONBLOCK (a FIFO
/// swapped in between cannot block the open), checked again with fstat, and
/// only then made blocking. O_NOFOLLOW in `flags` refuses a link at `p` itself.
/// A file that is not regular is invalid input when read, an I/O error when written.
inline unique_fd open_or_throw(const fs::path& p, int flags, mode_t mode = 0644) {
    const bool writing = flags & (O_WRONLY | O_RDWR);
    auto refuse = [&](const std::string& problem) {
        if (writing) throw io_error(p.string(), problem);
        throw invalid_input(p.string(), problem);
    };
    struct stat st {};
    if (((flags & O_NOFOLLOW) ? ::lstat(p.c_str(), &st) : ::stat(p.c_str(), &st)) == 0 && !S_ISREG(st.st_mode))
        refuse("is " + file_kind(st.st_mode) + ", not a regular file");
    unique_fd fd(::open(p.c_str(), flags | O_CLOEXEC | O_NONBLOCK, mode));
    if (!fd) {
        int e = errno;
        if (e == ELOOP && (flags & O_NOFOLLOW)) refuse("is a symbolic link; refusing to follow it");
        if (writing) throw io_error(p.string(), std::string("cannot write: ") + std::strerror(e));
        throw io_error(p.string(), std::string("cannot read: ") + std::strerror(e));
    }
    if (::fstat(fd.get(), &st) != 0) throw io_error(p.string(), std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) refuse("is " + file_kind(st.st_mode) + ", not a regular file");
    if (!(flags & O_NONBLOCK)) ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    return fd;
}

/// Creates `p` as a new regular file (mode 0644): whatever was at `p` (a file,
/// a link, a FIFO) is unlinked first, and the file is opened with
/// O_CREAT|O_EXCL|O_NOFOLLOW, so a write never goes through a link or into an
/// inode that something else shares (a hard link).
inline unique_fd create_file(const fs::path& p) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
        struct stat st {};
        int e = errno;
        if (::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw io_error(p.string(), "is a directory, not a regular file");
        throw io_error(p.string(), std::string("cannot replace: ") + std::strerror(e));
    }
    unique_fd fd = open_or_throw(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
    ::fchmod(fd.get(), 0644);  // whatever the umask said
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
constexpr std::uintmax_t parallel_copy_threshold = 64u << 20;

/// Copies `size` bytes in the kernel. Returns false, having written nothing, when
/// the file systems do not support copy_file_range (the caller falls back).
inline bool kernel_copy(int in, int out, std::uintmax_t size, const fs::path& dst) {
    std::uintmax_t done = 0;
    while (done < size) {
        check_cancel(dst.string());  // chunks of 64 MiB: a signal or the deadline is noticed within one
        ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, static_cast<std::size_t>(std::min<std::uintmax_t>(size - done, 64u << 20)), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (done == 0 && (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP)) return false;
            throw io_error(dst.string(), std::string("copy failed: ") + std::strerror(errno));
        }
        if (n == 0) throw io_error(dst.string(), "the source became shorter while it was copied");
        done += static_cast<std::uintmax_t>(n);
    }
    return true;
}

}  // namespace detail

namespace detail {

/// Reads `fd` to its end in 1 MiB blocks, handing each block to `block(data, n)`.
template <class Block>
void read_blocks(int fd, const fs::path& p, Block&& block) {
    std::vector<char> buf(copy_block);
    for (;;) {
        check_cancel(p.string());
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
/// A new file (create_file): never written through a link or into a shared inode.
inline written_file write_file(const fs::path& dst, const std::string& bytes) {
    unique_fd out = create_file(dst);
    detail::write_all(out.get(), bytes.data(), bytes.size(), dst);
    detail::fsync_or_throw(out.get(), dst);
    sha256 h;
    h.update(bytes.data(), bytes.size());
    return {bytes.size(), h.hex()};
}

/// Writes `bytes` unless `dst` already holds exactly them: an unchanged
/// generated source keeps its mtime, so ninja's restat rebuilds nothing after it.
inline void write_file_if_changed(const fs::path& dst, const std::string& bytes) {
    std::error_code ec;
    if (fs::is_regular_file(dst, ec) && fs::file_size(dst, ec) == bytes.size()) {
        sha256 h;
        h.update(bytes.data(), bytes.size());
        if (hash_file(dst) == h.hex()) return;
    }
    write_file(dst, bytes);
}

/// Copies `src` to `dst` byte for byte with mode 0644, hashing in the same
/// read. Tries a reflink first; `known_sha256` (e.g. an LFS blob name) skips
/// the hashing read when the clone succeeded.
inline written_file copy_file_hashed(const fs::path& src, const fs::path& dst, const std::string& known_sha256 = {}) {
    unique_fd in = open_or_throw(src, O_RDONLY);
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) throw invalid_input(src.string(), "is not a regular file");
    unique_fd out = create_file(dst);  // a new inode, mode 0644 whatever the umask or source said
    written_file result;
    if (::ioctl(out.get(), FICLONE, in.get()) == 0) {
        detail::fsync_or_throw(out.get(), dst);
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
        hasher.join();
        check_cancel(src.string());
        if (!hash_error.empty()) throw io_error(src.string(), hash_error);
        if (copied) {
            detail::fsync_or_throw(out.get(), dst);
            return {static_cast<std::uintmax_t>(st.st_size), digest};
        }
        ::lseek(in.get(), 0, SEEK_SET);
        ::ftruncate(out.get(), 0);
    }
    sha256 h;
    detail::read_blocks(in.get(), src, [&](const char* data, std::size_t n) {
        h.update(data, n);
        detail::write_all(out.get(), data, n, dst);
        result.size += n;
    });
    detail::fsync_or_throw(out.get(), dst);
    result.sha256 = h.hex();
    return result;
}

/// fsyncs a directory so renames and new entries in it are durable.
inline void fsync_directory(const fs::path& dir) {
    unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd) ::fsync(fd.get());
}

}  // namespace modelexport
