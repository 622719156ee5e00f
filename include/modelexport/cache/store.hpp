// modelexport/cache/store.hpp — the local export cache: content-addressed objects
// (`cas/<sha256>`) and action entries (`ac/<key>`, a JSON manifest), docs/design.md §10.
//
// The layout is the Bazel HTTP remote cache's, so a remote (cache/remote.hpp) mirrors it
// one to one. Every write is a temporary file in the same directory, fsync'ed and renamed:
// a concurrent reader sees the old state or the new one, never a partial file, and two
// builds storing the same key write identical bytes. Readers trust nothing: an object is
// used only after its size and SHA-256 matched while it was copied out, or matched once
// before and its stat has not changed since (verified_hash()). Eviction is LRU by mtime,
// which a hit touches, an object's at most hourly (atime is unreliable under noatime/relatime).
#pragma once

#include "modelexport/cache/key.hpp"
#include "modelexport/cache/settings.hpp"
#include "modelexport/detail/file_copy.hpp"
#include "modelexport/detail/json_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace modelexport {

/// Any failure of a cache (I/O, corrupt or missing object, server): always a miss, never an export error.
class cache_error : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// One file of a cached export, by its name in the staging directory.
struct cached_file {
    std::string path;
    std::uintmax_t size = 0;
    std::string sha256;
};

/// What an `ac/<key>` entry holds: the files the strategy produced and its module table.
struct cache_manifest {
    std::vector<cached_file> files;
    json table = json::object();
};

constexpr std::uintmax_t max_manifest_bytes = 64u << 20;  // a module table of a very large model fits

inline std::string manifest_text(const cache_manifest& m) {
    json files = json::array();
    for (const auto& f : m.files) files.push_back({{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
    return json{{"format", 1}, {"files", files}, {"table", m.table}}.dump();
}

namespace detail {

inline bool is_sha256_hex(const std::string& s) {
    return s.size() == 64 &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

/// A cached file name is one plain component: a hostile manifest cannot write outside the stage.
inline bool is_plain_name(const std::string& s) {
    return !s.empty() && s.size() < 256 && s[0] != '.' && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

}  // namespace detail

/// Parses a manifest from the local or remote cache; anything unexpected is a cache_error.
inline cache_manifest parse_manifest(const std::string& text) {
    try {
        json doc = parse_json_text(text, "cache manifest", {max_manifest_bytes, 64});
        if (doc.at("format").get<int>() != 1) throw cache_error("unknown manifest format");
        cache_manifest m;
        for (const auto& f : doc.at("files")) {
            cached_file c{f.at("path").get<std::string>(), f.at("size").get<std::uintmax_t>(),
                          f.at("sha256").get<std::string>()};
            if (!detail::is_plain_name(c.path) || !detail::is_sha256_hex(c.sha256))
                throw cache_error("bad manifest entry");
            m.files.push_back(std::move(c));
        }
        if (m.files.empty()) throw cache_error("manifest lists no files");
        m.table = doc.at("table");
        return m;
    } catch (const cache_error&) {
        throw;
    } catch (const std::exception& e) {
        throw cache_error(std::string("unusable manifest: ") + e.what());
    }
}

/// A file's identity and last change (device, inode, size, mtime, ctime), as fstat gives it:
/// equal states mean nothing wrote to the file in between (a write moves mtime and ctime).
struct file_state {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    long long mtime_ns = 0, ctime_ns = 0;

    static file_state of(int fd) {
        struct stat st {};
        if (::fstat(fd, &st) != 0) return {};
        return {st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec};
    }
    bool operator==(const file_state& o) const {
        return size >= 0 && dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns &&
               ctime_ns == o.ctime_ns;
    }
    bool operator!=(const file_state& o) const { return !(*this == o); }
};

/// Counts and sizes of a cache directory, for `modelexport cache stats`.
struct cache_stats {
    std::size_t entries = 0, objects = 0;
    std::uintmax_t bytes = 0;
};

/// What `verify` found: objects whose bytes no longer match their name, entries naming missing objects.
struct cache_verify_result {
    std::size_t objects = 0, bad_objects = 0, entries = 0, broken_entries = 0;
};

/// A directory of the cache held open: every name below it resolves in the directory opened,
/// even if a link has replaced its name since. `path` (/proc/self/fd/N) hands that to the
/// functions taking paths; they never follow a final component that is a link (unlink, rename,
/// open with O_NOFOLLOW). `shown` is its name in messages.
struct held_dir {
    unique_fd fd;
    fs::path path, shown;

    explicit operator bool() const { return static_cast<bool>(fd); }
    fs::path at(const std::string& name) const { return path / name; }

    /// The entry `name` as lstat sees it; false when it does not exist.
    bool stat(const std::string& name, struct stat& st) const {
        return ::fstatat(fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    }

    /// Opens the regular file `name` (never through a link, never blocking on a FIFO; one link:
    /// nothing outside shares its inode). Empty when it does not exist; a cache_error naming it otherwise.
    unique_fd open(const std::string& name, int flags = O_RDONLY, mode_t mode = 0644) const {
        unique_fd f(::openat(fd.get(), name.c_str(), flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode));
        if (!f && errno == ENOENT && !(flags & O_CREAT)) return f;
        struct stat st {};
        if (!f && errno == ELOOP) throw cache_error((shown / name).string() + " is a symbolic link");
        if (!f) throw cache_error((shown / name).string() + ": " + std::strerror(errno));
        if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode))
            throw cache_error((shown / name).string() + " is " + file_kind(st.st_mode) + ", not a regular file");
        if (st.st_nlink != 1)
            throw cache_error((shown / name).string() + " has " + std::to_string(st.st_nlink) + " links");
        ::fcntl(f.get(), F_SETFL, ::fcntl(f.get(), F_GETFL) & ~O_NONBLOCK);
        return f;
    }

    void fsync() const { ::fsync(fd.get()); }
};

/// A path that reads the file open at `fd` (its inode, whatever its name is now).
inline fs::path fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

class local_cache {
public:
    static constexpr std::uintmax_t default_max_size = default_cache_max_size;
    static fs::path default_root() { return default_cache_dir(); }

    explicit local_cache(fs::path root) : root_(std::move(root)) {}

    const fs::path& root() const { return root_; }
    /// Where an object and an entry are, for messages and tests (the cache itself opens them through held dirs).
    fs::path object(const std::string& sha) const { return root_ / "cas" / sha; }
    fs::path entry(const std::string& key) const { return root_ / "ac" / key; }

    // The trust rule of the cache directory (docs/design.md §10): the root is the user's (a link
    // to another disk is fine), but nothing below it is followed. Its subdirectories are opened
    // relative to the root's descriptor with O_NOFOLLOW, and every file relative to theirs, as
    // a regular file with one link opened without blocking. A link, a FIFO or a device where
    // the cache keeps something makes that operation a cache_error (a miss for an export); no
    // write, delete or mtime change ever reaches outside the cache through one.

    /// The subdirectory `sub` (ac, cas, probes, pending), created when missing if `create`;
    /// an empty held_dir when it does not exist and is not to be created.
    held_dir dir(const std::string& sub, bool create = true) const {
        held_dir root = root_dir(create);
        if (!root) return held_dir();
        if (create && ::mkdirat(root.fd.get(), sub.c_str(), 0755) != 0 && errno != EEXIST)
            throw cache_error((root_ / sub).string() + ": cannot create: " + std::strerror(errno));
        unique_fd fd(::openat(root.fd.get(), sub.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) {
            if (errno == ENOENT && !create) return held_dir();
            struct stat st {};
            if (root.stat(sub, st) && !S_ISDIR(st.st_mode))
                throw cache_error((root_ / sub).string() + " is " + file_kind(st.st_mode) +
                                  ", not a directory: the cache is not used (modelexport cache clear removes it)");
            throw cache_error((root_ / sub).string() + ": " + std::strerror(errno));
        }
        fs::path path = fd_path(fd.get());
        return {std::move(fd), path, root_ / sub};
    }

    /// The probe directory (hashes of inputs, the interpreter's identity), held: cache/key.hpp writes there by path.
    held_dir probes() const { return dir("probes"); }

    /// A fresh temporary name in a cache directory (same file system as the final name, so rename is atomic).
    static std::string temp_in() { return detail::temp_name(); }

    /// The manifest of `key`, or nullopt when there is none. Touches it (LRU). An unusable one is a cache_error.
    std::optional<cache_manifest> find(const std::string& key) const {
        held_dir ac = dir("ac", false);
        unique_fd fd = ac ? ac.open(key) : unique_fd();
        if (!fd) return std::nullopt;
        cache_manifest m = parse_manifest(read_text_file(fd_path(fd.get()), max_manifest_bytes));
        ::futimens(fd.get(), nullptr);  // the inode read, not whatever the name points to now
        return m;
    }

    /// Whether the store holds `f` as an object of its size (a regular file, not a link).
    bool has_object(const cached_file& f) const {
        held_dir cas = dir("cas", false);
        struct stat st {};
        return cas && cas.stat(f.sha256, st) && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
               static_cast<std::uintmax_t>(st.st_size) == f.size;
    }

    /// Copies the manifest's objects into `stage`, verifying each one's size and SHA-256 in the
    /// same read, unless the object was verified before in its current state (verified_hash()).
    /// A mismatching object is deleted (the next store replaces it) and is a cache_error.
    void materialize(const cache_manifest& m, const fs::path& stage) const {
        if (m.files.empty()) return;  // a remote hit whose objects were all downloaded: cas/ may not exist yet
        held_dir cas = dir("cas", false), probe = probes();
        if (!cas) throw cache_error(object("").string() + " does not exist");
        for (const auto& f : m.files) {
            unique_fd obj = cas.open(f.sha256);
            struct stat st {};
            if (!obj || ::fstat(obj.get(), &st) != 0 || static_cast<std::uintmax_t>(st.st_size) != f.size)
                throw cache_error("object " + f.sha256 + " missing or of the wrong size");
            const bool verified = verified_hash(probe, f.sha256, st) == f.sha256;  // before the touch changes its stat
            touch_object(obj.get(), st);
            if (verified) {
                copy_file_known(fd_path(obj.get()), stage / f.path, f.sha256);
            } else {
                written_file w = copy_file_hashed(fd_path(obj.get()), stage / f.path);
                if (w.size != f.size || w.sha256 != f.sha256) {
                    std::error_code ec;
                    ::unlinkat(cas.fd.get(), f.sha256.c_str(), 0);
                    fs::remove(stage / f.path, ec);
                    throw cache_error("object " + f.sha256 + " is corrupt (removed)");
                }
            }
            remember_verified(probe, obj.get(), f.sha256);
        }
    }

    /// An object's SHA-256 as verified before (when it was stored, or copied out by a hit),
    /// remembered in probes/ under its path, device, inode, size, mtime and ctime as a source
    /// file's hash is (cache/key.hpp): a hit then copies without reading the object to hash it,
    /// and any write to the object (a corruption) changes its ctime and brings the check back.
    std::optional<std::string> verified_hash(const held_dir& probe, const std::string& sha,
                                             const struct stat& st) const {
        return detail::recalled_hash(detail::stat_hash_note(object(sha).string(), probe.path, st));
    }

    /// Remembers that the object open at `obj` holds `sha` in its current state. Unlike a source
    /// file's hash this needs no "racily clean" delay: cas/ is written only by modelexport, once
    /// per object (temp file, fsync, rename), and later changed only by touch_object().
    void remember_verified(const held_dir& probe, int obj, const std::string& sha) const {
        struct stat st {};
        if (::fstat(obj, &st) != 0) return;
        fs::path note = detail::stat_hash_note(object(sha).string(), probe.path, st);
        struct stat seen {};
        if (!probe.stat(note.filename().string(), seen)) detail::remember(note, json{{"sha256", sha}});
    }

    /// Stores `files` of `stage` as objects, then the entry (the entry is the commit: a reader
    /// that finds it finds its objects, unless eviction raced it, which readers detect).
    cache_manifest store(const std::string& key, const fs::path& stage, const std::vector<std::string>& files,
                         const json& table) const {
        cache_manifest m;
        m.table = table;
        std::vector<staged_object> staged = stage_objects(stage, files);
        for (const auto& o : staged) m.files.push_back(o.file);
        commit_staged(staged);
        put_entry(key, manifest_text(m));
        return m;
    }

    /// An object copied into cas/ under a temporary name: neither durable nor named yet.
    /// It holds cas/ open: the temporary name resolves there until it is committed.
    struct staged_object {
        cached_file file;
        std::string tmp;
        std::shared_ptr<const held_dir> dir;
        fs::path path() const { return dir->at(tmp); }
    };

    /// cas/, held for staged objects (cache/remote.hpp downloads into it too).
    std::shared_ptr<const held_dir> objects_dir() const { return std::make_shared<const held_dir>(dir("cas")); }

    /// The first half of a store: copies `files` of `stage` to temporary files in cas/, hashing
    /// them in the same read. Their write-back starts (sync_file_range) but nothing waits for
    /// the disk: commit_staged() fsyncs and names them, so the export can go on meanwhile.
    std::vector<staged_object> stage_objects(const fs::path& stage, const std::vector<std::string>& files) const {
        std::vector<std::pair<std::string, fs::path>> named;
        for (const auto& name : files) named.emplace_back(name, stage / name);
        return stage_objects(named);
    }

    /// The same from `{name, file to read}` pairs (a background store reads /proc/self/fd/N).
    std::vector<staged_object> stage_objects(const std::vector<std::pair<std::string, fs::path>>& named) const {
        std::vector<staged_object> out;
        try {
            auto cas = objects_dir();
            for (const auto& [name, from] : named) {
                if (!detail::is_plain_name(name)) throw cache_error("cannot cache '" + name + "'");
                out.push_back({{name, 0, {}}, temp_in(), cas});
                written_file w = copy_file_hashed(from, out.back().path(), {}, false);
                out.back().file.size = w.size;
                out.back().file.sha256 = w.sha256;
            }
        } catch (...) {
            remove_staged(out);
            throw;
        }
        return out;
    }

    /// The second half: fsyncs each staged object, then renames it to its name (temp file,
    /// fsync, rename). What fails is removed; the entry must be written only after this.
    void commit_staged(const std::vector<staged_object>& staged) const {
        try {
            for (const auto& o : staged) {
                detail::fsync_or_throw(o.dir->open(o.tmp).get(), o.dir->shown / o.tmp);
                commit_object(o);
            }
        } catch (...) {
            remove_staged(staged);
            throw;
        }
    }

    static void remove_staged(const std::vector<staged_object>& staged) {
        for (const auto& o : staged) ::unlinkat(o.dir->fd.get(), o.tmp.c_str(), 0);
    }

    /// Renames a verified temporary file (in cas/) to its object name.
    void commit_object(const staged_object& o) const {
        const held_dir& cas = *o.dir;
        const std::string& sha = o.file.sha256;
        struct stat st {};
        if (cas.stat(sha, st) && S_ISREG(st.st_mode) &&
            st.st_nlink == 1) {  // same name, same bytes (readers verify anyway)
            ::unlinkat(cas.fd.get(), o.tmp.c_str(), 0);
            if (unique_fd obj = cas.open(sha)) touch_object(obj.get(), st);
            return;
        }
        // Replaces whatever else has the name (a link, a FIFO): by name, never followed.
        if (::renameat(cas.fd.get(), o.tmp.c_str(), cas.fd.get(), sha.c_str()) != 0)
            throw cache_error(object(sha).string() + ": cannot rename into place: " + std::strerror(errno));
        cas.fsync();
        if (unique_fd obj = cas.open(sha))
            remember_verified(probes(), obj.get(), sha);  // its bytes were hashed as they were written
    }

    /// Writes an entry atomically.
    void put_entry(const std::string& key, const std::string& text) const {
        held_dir ac = dir("ac");
        std::string tmp = temp_in();
        write_file(ac.at(tmp), text);
        if (::renameat(ac.fd.get(), tmp.c_str(), ac.fd.get(), key.c_str()) != 0) {
            int e = errno;
            ::unlinkat(ac.fd.get(), tmp.c_str(), 0);
            throw cache_error(entry(key).string() + ": cannot rename into place: " + std::strerror(e));
        }
        ac.fsync();
    }

    // Background stores (cache/export_cache.hpp): a store that runs after its export returned holds
    // an exclusive flock on pending/<key> from before the export returns until it has uploaded;
    // once its entry is written it writes "local done" into the marker. A lookup of that key
    // waits for the entry (or that line, or the lock's end: a store that died or failed);
    // `cache wait` and prune/clear/verify wait for every store. A store that died left an
    // unlocked file: nobody waits for it, and the next prune removes it.

    fs::path pending(const std::string& key) const { return root_ / "pending" / key; }

    /// What claim_store() got: the marker, locked (`fd`); or another process is storing this
    /// key (`busy`: its bytes are the same); or neither, because the cache's file system has
    /// no flock (NFS without its lock daemon): then the caller stores in the command.
    struct store_claim {
        unique_fd fd;
        bool busy = false;
    };

    /// Locks pending/<key> for a background store. Like the package writer's lock it checks that
    /// the file it locked is still the one at that name (a finishing store unlinks its marker),
    /// and retries a refused lock for a moment (a waiter's probe holds a shared lock briefly).
    store_claim claim_store(const std::string& key) const {
        held_dir markers = dir("pending");
        for (int attempt = 0; attempt < 10; ++attempt) {
            unique_fd fd = markers.open(key, O_RDWR | O_CREAT);
            if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
                if (errno != EWOULDBLOCK) return store_claim();  // no flock here: no marker
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            struct stat held {
            }, named{};
            if (::fstat(fd.get(), &held) == 0 && markers.stat(key, named) && held.st_ino == named.st_ino &&
                held.st_dev == named.st_dev)
                return {std::move(fd), false};
        }
        return {unique_fd(), true};
    }

    /// The store's entry is written: lookups stop waiting for it (the upload may go on).
    static void local_done(int marker) { (void)!::pwrite(marker, "local done\n", 11, 0); }

    /// The store is over: its marker goes (the lock goes with the process).
    void end_store(const std::string& key) const {
        if (held_dir markers = dir("pending", false)) ::unlinkat(markers.fd.get(), key.c_str(), 0);
    }

    /// Waits while a background store of `key` runs and has not written its entry yet.
    void wait_for_entry(const std::string& key) const {
        held_dir markers = dir("pending", false);
        unique_fd fd = markers ? markers.open(key) : unique_fd();
        struct stat st {};
        while (fd && !has_entry(key) && ::fstat(fd.get(), &st) == 0 && st.st_size == 0 && locked(fd.get())) pause();
    }

    /// Whether ac/ has a name `key` (ac/ opened anew: a store may create it meanwhile).
    bool has_entry(const std::string& key) const {
        held_dir ac = dir("ac", false);
        struct stat st {};
        return ac && ac.stat(key, st);
    }

    /// How many background stores of this cache are running now.
    std::size_t running_stores() const {
        std::size_t n = 0;
        for_each_marker([&](int fd, const std::string&, const struct stat&) { n += locked(fd); });
        return n;
    }

    /// Waits for every background store of this cache (uploads included), for at most `limit`
    /// when it is positive; returns how many were running and how many still are.
    std::pair<std::size_t, std::size_t> wait_for_stores(std::chrono::seconds limit = std::chrono::seconds(0)) const {
        const auto until = std::chrono::steady_clock::now() + limit;
        std::size_t waited = 0, left = 0;
        for_each_marker([&](int fd, const std::string&, const struct stat&) {
            if (!locked(fd)) return;
            ++waited;
            while (locked(fd) && (limit.count() <= 0 || std::chrono::steady_clock::now() < until)) pause();
            left += locked(fd);
        });
        return {waited, left};
    }

    /// Appends a line to store.log: what a background store has to say (its failures are
    /// misses for later exports, but someone debugging a miss wants to read them). Kept small.
    void log(const std::string& line) const {
        try {
            held_dir root = root_dir(false);
            struct stat st {};
            if (!root) return;
            if (root.stat("store.log", st) && st.st_size > (1 << 20)) ::unlinkat(root.fd.get(), "store.log", 0);
            unique_fd fd = root.open("store.log", O_WRONLY | O_APPEND | O_CREAT);
            std::time_t now = std::time(nullptr);
            char stamp[32] = {};
            std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
            std::string text = std::string(stamp) + " " + line + "\n";
            (void)!::write(fd.get(), text.data(),
                           text.size());  // one write: lines of concurrent stores do not interleave
        } catch (const cache_error&) {    // a log that is a link or a FIFO is not written
        }
    }

    /// Refuses the cache (a cache_error naming the entry) when something below its root is not the
    /// cache's own: ac/, cas/, probes/ or pending/ that is not a directory, or a name in one of them,
    /// or store.log, that is not a regular file with one link (a link leaving the cache, a FIFO,
    /// a device, a hard link). The commands that report on the cache (stats, verify) call it
    /// first: a report that counted around such an entry would describe a cache that is not there.
    void check_own_entries() const {
        held_dir root = root_dir(false);
        struct stat st {};
        if (!root) return;
        if (root.stat("store.log", st))
            if (std::string problem = foreign_problem(st); !problem.empty())
                throw cache_error((root_ / "store.log").string() + " " + problem);
        for (const char* sub : {"ac", "cas", "probes", "pending"}) {
            held_dir d = dir(sub, false);
            if (!d) continue;
            for_each_name(d, [&](const std::string& name, const struct stat& entry) {
                if (std::string problem = foreign_problem(entry); !problem.empty())
                    throw cache_error((d.shown / name).string() + " " + problem);
            });
        }
    }

    cache_stats stats() const {
        check_own_entries();
        cache_stats s;
        for (const auto& f : files()) {
            if (f.is_temp || f.foreign) continue;
            (f.is_entry ? s.entries : s.objects)++;
            s.bytes += f.size;
        }
        return s;
    }

    /// Deletes least recently used entries and objects until the cache holds at most `max_bytes`.
    /// Temporary files go once their writer is dead, or after an hour (a writer in another pid
    /// namespace); unlocked markers of stores that died go at once; what modelexport never
    /// puts there (links, FIFOs, devices) goes too, by its own name (unlinked, never followed).
    /// Returns bytes freed.
    std::uintmax_t prune(std::uintmax_t max_bytes) const {
        auto all = files();
        std::uintmax_t total = 0, freed = 0;
        const auto now = std::chrono::system_clock::now();
        std::vector<cache_file> kept;
        for (auto& f : all) {
            if (f.foreign ||
                (f.is_temp && (detail::temp_owner_gone(f.name) || now - f.mtime > std::chrono::hours(1)))) {
                if (::unlinkat(f.dir->fd.get(), f.name.c_str(), 0) == 0 && !f.foreign) freed += f.size;
                continue;
            }
            if (f.is_temp) continue;
            total += f.size;
            kept.push_back(f);
        }
        if (held_dir probe = dir("probes", false))  // hashes of files in states long gone (recomputed if not)
            for_each_name(probe, [&](const std::string& name, const struct stat& st) {
                bool old = std::chrono::system_clock::from_time_t(st.st_mtime) < now - std::chrono::hours(24 * 7);
                bool stale_temp = name.rfind(".tmp-", 0) == 0 &&
                                  (detail::temp_owner_gone(name) ||
                                   std::chrono::system_clock::from_time_t(st.st_mtime) < now - std::chrono::hours(1));
                if (!S_ISREG(st.st_mode) || stale_temp || (old && name.rfind("file-", 0) == 0))
                    ::unlinkat(probe.fd.get(), name.c_str(), 0);
            });
        for_each_marker(
            [&](int fd, const std::string& name, const struct stat&) {  // markers of stores that died
                if (!locked(fd))
                    if (held_dir markers = dir("pending", false)) remove_if_same(markers, name, fd);
            },
            true);
        std::sort(kept.begin(), kept.end(), [](const cache_file& a, const cache_file& b) { return a.mtime < b.mtime; });
        for (const auto& f : kept) {
            if (total <= max_bytes) break;
            if (::unlinkat(f.dir->fd.get(), f.name.c_str(), 0) == 0) {
                total -= f.size;
                freed += f.size;
            }
        }
        return freed;
    }

    /// Removes everything the cache holds (not the directory itself, which the user may have made).
    /// A link where a subdirectory belongs is removed itself, never followed.
    void clear() const {
        held_dir root = root_dir(false);
        if (!root) return;
        std::error_code ec;
        for (const char* sub : {"ac", "cas", "probes"}) fs::remove_all(root.at(sub), ec);
        struct stat st {};
        if (root.stat("pending", st) && !S_ISDIR(st.st_mode))
            ::unlinkat(root.fd.get(), "pending", 0);  // the markers of running stores stay
    }

    /// Re-hashes every object and checks every entry; removes what is bad. A cache holding what is
    /// not its own is refused (check_own_entries): prune or clear remove such names.
    cache_verify_result verify() const {
        check_own_entries();
        cache_verify_result r;
        for (const auto& f : files()) {
            if (f.is_temp || f.is_entry) continue;
            ++r.objects;
            bool ok = false;
            try {
                unique_fd obj = f.dir->open(f.name);
                ok = obj && hash_file(fd_path(obj.get())) == f.name;
            } catch (const std::exception&) {}
            if (!ok) {
                ++r.bad_objects;
                ::unlinkat(f.dir->fd.get(), f.name.c_str(), 0);
            }
        }
        for (const auto& f : files()) {
            if (!f.is_entry || f.is_temp || f.foreign) continue;
            ++r.entries;
            bool ok = false;
            try {
                unique_fd text = f.dir->open(f.name);
                cache_manifest m = parse_manifest(read_text_file(fd_path(text.get()), max_manifest_bytes));
                ok = std::all_of(m.files.begin(), m.files.end(), [&](const cached_file& c) { return has_object(c); });
            } catch (const std::exception&) {}
            if (!ok) {
                ++r.broken_entries;
                ::unlinkat(f.dir->fd.get(), f.name.c_str(), 0);
            }
        }
        return r;
    }

private:
    /// One name in ac/ or cas/ as lstat saw it. `foreign`: not a regular file with one link
    /// (a link, a FIFO, a device, a directory): never the cache's own, never opened.
    struct cache_file {
        std::shared_ptr<const held_dir> dir;
        std::string name;
        std::uintmax_t size = 0;
        std::chrono::system_clock::time_point mtime;
        bool is_entry = false, is_temp = false, foreign = false;
    };

    /// The root, opened as the user named it (links followed: it is theirs); created when missing if `create`.
    held_dir root_dir(bool create) const {
        if (create) {
            std::error_code ec;
            fs::create_directories(root_, ec);
        }
        unique_fd fd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd) {
            if (errno == ENOENT && !create) return held_dir();
            throw cache_error(root_.string() + ": " + std::strerror(errno));
        }
        fs::path path = fd_path(fd.get());
        return {std::move(fd), path, root_};
    }

    /// What an entry lstat'ed as `st` is when it is not a file the cache wrote (a regular file with
    /// one link: nothing outside shares its inode); "" when it is one.
    static std::string foreign_problem(const struct stat& st) {
        if (S_ISLNK(st.st_mode)) return "is a symbolic link; the cache follows none";
        if (!S_ISREG(st.st_mode)) return "is " + file_kind(st.st_mode) + ", not a regular file";
        if (st.st_nlink != 1) return "has " + std::to_string(st.st_nlink) + " links";
        return {};
    }

    /// Calls `f(name, lstat)` for each name in `d` (not . and ..).
    template <class F>
    static void for_each_name(const held_dir& d, F&& f) {
        unique_fd copy(::dup(d.fd.get()));
        DIR* listing = copy ? ::fdopendir(copy.get()) : nullptr;
        if (!listing) return;
        copy.release();
        ::rewinddir(listing);
        std::vector<std::string> names;
        while (dirent* e = ::readdir(listing))
            if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
        ::closedir(listing);
        for (const auto& name : names) {
            struct stat st {};
            if (d.stat(name, st)) f(name, st);
        }
    }

    std::vector<cache_file> files() const {
        std::vector<cache_file> out;
        for (const char* sub : {"ac", "cas"}) {
            auto d = std::make_shared<const held_dir>(dir(sub, false));
            if (!*d) continue;
            for_each_name(*d, [&](const std::string& name, const struct stat& st) {
                out.push_back({d, name, static_cast<std::uintmax_t>(st.st_size),
                               std::chrono::system_clock::from_time_t(st.st_mtime), sub[0] == 'a',
                               name.rfind(".tmp-", 0) == 0, !foreign_problem(st).empty()});
            });
        }
        return out;
    }

    /// Calls `f(fd, name, lstat)` for each marker in pending/ that is a regular file, opened
    /// without blocking; other names there are skipped, or with `remove_foreign` unlinked.
    /// A pending/ that is refused (a link) holds no store of ours: nothing to wait for.
    template <class F>
    void for_each_marker(F&& f, bool remove_foreign = false) const {
        held_dir markers;
        try {
            markers = dir("pending", false);
        } catch (const cache_error&) {
            return;
        }
        if (!markers) return;
        for_each_name(markers, [&](const std::string& name, const struct stat& st) {
            unique_fd fd;
            try {
                fd = markers.open(name);
            } catch (const cache_error&) {
                if (remove_foreign) ::unlinkat(markers.fd.get(), name.c_str(), 0);
            }
            if (fd) f(fd.get(), name, st);
        });
    }

    /// Unlinks `name` in `d` if it is still the file open at `fd` (a new store may have claimed the name since).
    static void remove_if_same(const held_dir& d, const std::string& name, int fd) {
        struct stat held {
        }, named{};
        if (::fstat(fd, &held) == 0 && d.stat(name, named) && held.st_ino == named.st_ino &&
            held.st_dev == named.st_dev)
            ::unlinkat(d.fd.get(), name.c_str(), 0);
    }

    /// Whether another process holds an exclusive lock on `fd`'s file (a shared lock is refused
    /// then). Any other failure (no flock on this file system) is "not locked": no wait hangs on it.
    static bool locked(int fd) {
        if (::flock(fd, LOCK_SH | LOCK_NB) != 0) return errno == EWOULDBLOCK;
        ::flock(fd, LOCK_UN);
        return false;
    }

    /// One poll of a wait for a store: a signal or the --timeout deadline ends it.
    static void pause() {
        check_cancel("the export cache");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }

    /// Marks an object open at `fd` (stat'ed as `st`) as recently used for LRU eviction, at most
    /// once an hour: a touch changes the stat its verified hash is remembered under, and an
    /// hour is fine grain enough for eviction. The inode opened is touched, never a link's target.
    static void touch_object(int fd, const struct stat& st) {
        if (std::chrono::system_clock::now() - std::chrono::system_clock::from_time_t(st.st_mtime) >
            std::chrono::hours(1))
            ::futimens(fd, nullptr);
    }

    fs::path root_;
};

}  // namespace modelexport
