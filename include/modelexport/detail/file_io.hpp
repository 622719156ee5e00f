// modelexport/detail/file_io.hpp — POSIX file descriptors: owned fds, whole writes, fsync, block reads,
// hashing a file, writing a file (only when changed).
//
// Package files go through descriptors, not streams, because they must be fsync'ed before
// they are renamed into place (std::ofstream cannot fsync; docs/design.md §1).
#pragma once

#include "modelexport/detail/cancel.hpp"
#include "modelexport/detail/sha256.hpp"
#include "modelexport/error.hpp"

#include <dirent.h>
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
    int release() {
        int f = fd_;
        fd_ = -1;
        return f;
    }
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

/// Refuses to replace a device, FIFO or socket at `p`, a path modelexport is about to write by unlinking or
/// renaming over it: a user's `--report /dev/null` run as root would otherwise delete /dev/null.
inline void refuse_replacing_special_file(const fs::path& p) {
    struct stat there {};
    if (::lstat(p.c_str(), &there) == 0 && !S_ISREG(there.st_mode) && !S_ISLNK(there.st_mode) &&
        !S_ISDIR(there.st_mode))
        throw io_error(p.string(), "is " + file_kind(there.st_mode) + ", not a regular file; refusing to replace it");
}

/// Creates `p` as a new regular file (mode 0644): a file or a link at `p` is
/// unlinked first, and the file is opened with O_CREAT|O_EXCL|O_NOFOLLOW, so a
/// write never goes through a link or into an inode that something else shares
/// (a hard link). A special file at `p` is refused (refuse_replacing_special_file).
inline unique_fd create_file(const fs::path& p) {
    refuse_replacing_special_file(p);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
        struct stat st {};
        int e = errno;
        if (::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
            throw io_error(p.string(), "is a directory, not a regular file");
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

namespace detail {

/// Opens the directory `name` of `dir_fd` (never a link) after giving it mode 0700: a directory
/// of mode 000 cannot be opened otherwise. The mode is set through an O_PATH descriptor of
/// that very directory, so no link swapped in meanwhile is followed.
inline unique_fd open_directory_forcibly(int dir_fd, const char* name) {
    unique_fd where(::openat(dir_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!where) return where;
    ::chmod(("/proc/self/fd/" + std::to_string(where.get())).c_str(), 0700);
    return unique_fd(::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

/// Gives every directory under the directory `dir_fd` (itself included) mode 0700, through
/// descriptors, never following a link; `depth` bounds the descriptors held open at once.
inline void make_tree_removable(int dir_fd, int depth) {
    ::fchmod(dir_fd, 0700);
    if (depth >= 256) return;
    int fd = ::dup(dir_fd);
    DIR* d = fd >= 0 ? ::fdopendir(fd) : nullptr;
    if (!d) {
        if (fd >= 0) ::close(fd);
        return;
    }
    while (dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        unique_fd sub(::openat(dir_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub && errno == EACCES) sub = open_directory_forcibly(dir_fd, e->d_name);
        if (sub) make_tree_removable(sub.get(), depth + 1);
    }
    ::closedir(d);
}

}  // namespace detail

/// Removes `p` and everything under it, like fs::remove_all, also where a directory's mode
/// forbids it (a previous package someone made read-only, a command's `chmod 000 {output}`):
/// modelexport's own staging directories never stay behind. Best effort, never throws.
inline void remove_tree(const fs::path& p) {
    std::error_code ec;
    fs::remove_all(p, ec);
    if (!ec) return;
    unique_fd fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd && errno == EACCES) fd = detail::open_directory_forcibly(AT_FDCWD, p.c_str());
    if (fd) detail::make_tree_removable(fd.get(), 0);
    fs::remove_all(p, ec);
}

/// fsyncs a directory so renames and new entries in it are durable.
inline void fsync_directory(const fs::path& dir) {
    unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd) ::fsync(fd.get());
}

}  // namespace modelexport
