// modelexport/cache_store.hpp — the local export cache: content-addressed objects
// (`cas/<sha256>`) and action entries (`ac/<key>`, a JSON manifest), docs/design.md §10.
//
// The layout is the Bazel HTTP remote cache's, so a remote (remote_cache.hpp) mirrors it
// one to one. Every write is a temporary file in the same directory, fsync'ed and renamed:
// a concurrent reader sees the old state or the new one, never a partial file, and two
// builds storing the same key write identical bytes. Readers trust nothing: an object is
// used only after its size and SHA-256 matched while it was copied out, or matched once
// before and its stat has not changed since (verified_hash()). Eviction is LRU by mtime,
// which a hit touches, an object's at most hourly (atime is unreliable under noatime/relatime).
#pragma once

#include "modelexport/cache_key.hpp"
#include "modelexport/file_copy.hpp"
#include "modelexport/json_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
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
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

/// A cached file name is one plain component: a hostile manifest cannot write outside the stage.
inline bool is_plain_name(const std::string& s) {
    return !s.empty() && s.size() < 256 && s[0] != '.' &&
           std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; });
}

}  // namespace detail

/// Parses a manifest from the local or remote cache; anything unexpected is a cache_error.
inline cache_manifest parse_manifest(const std::string& text) {
    try {
        json doc = parse_json_text(text, "cache manifest", {max_manifest_bytes, 64});
        if (doc.at("format").get<int>() != 1) throw cache_error("unknown manifest format");
        cache_manifest m;
        for (const auto& f : doc.at("files")) {
            cached_file c{f.at("path").get<std::string>(), f.at("size").get<std::uintmax_t>(), f.at("sha256").get<std::string>()};
            if (!detail::is_plain_name(c.path) || !detail::is_sha256_hex(c.sha256)) throw cache_error("bad manifest entry");
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

/// "10G", "500M", "64K", plain bytes; nullopt when it is none of these.
inline std::optional<std::uintmax_t> parse_size(const std::string& s) {
    if (s.empty()) return std::nullopt;
    char* end = nullptr;
    unsigned long long n = std::strtoull(s.c_str(), &end, 10);
    if (end == s.c_str()) return std::nullopt;
    std::string unit(end);
    if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
    if (!unit.empty() && (unit.back() == 'i')) unit.pop_back();
    int shift = unit.empty() ? 0 : unit == "K" || unit == "k" ? 10 : unit == "M" || unit == "m" ? 20 : unit == "G" || unit == "g" ? 30 : unit == "T" || unit == "t" ? 40 : -1;
    if (shift < 0) return std::nullopt;
    return static_cast<std::uintmax_t>(n) << shift;
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
        return size >= 0 && dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
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

class local_cache {
public:
    static constexpr std::uintmax_t default_max_size = 10ull << 30;

    /// $MODELEXPORT_CACHE_DIR, else $XDG_CACHE_HOME/modelexport/exports, else ~/.cache/modelexport/exports.
    /// A subfolder: ~/.cache/modelexport/python-* already holds the pinned Python environment.
    static fs::path default_root() {
        if (const char* d = std::getenv("MODELEXPORT_CACHE_DIR"); d && *d) return d;
        if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "modelexport" / "exports";
        const char* home = std::getenv("HOME");
        return fs::path(home && *home ? home : "/tmp") / ".cache" / "modelexport" / "exports";
    }

    explicit local_cache(fs::path root) : root_(std::move(root)) {}

    const fs::path& root() const { return root_; }
    fs::path object(const std::string& sha) const { return root_ / "cas" / sha; }
    fs::path entry(const std::string& key) const { return root_ / "ac" / key; }
    fs::path probes() const { return root_ / "probes"; }

    /// A fresh temporary name inside `dir` (same file system as the final name, so rename is atomic).
    static fs::path temp_in(const fs::path& dir) {
        static std::atomic<unsigned> counter{0};
        auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        return dir / (".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(now));
    }

    /// The manifest of `key`, or nullopt when there is none (or it is unusable). Touches it (LRU).
    std::optional<cache_manifest> find(const std::string& key) const {
        std::error_code ec;
        if (!fs::is_regular_file(entry(key), ec)) return std::nullopt;
        cache_manifest m = parse_manifest(read_text_file(entry(key), max_manifest_bytes));
        touch(entry(key));
        return m;
    }

    /// Copies the manifest's objects into `stage`, verifying each one's size and SHA-256 in the
    /// same read, unless the object was verified before in its current state (verified_hash()).
    /// A mismatching object is deleted (the next store replaces it) and is a cache_error.
    void materialize(const cache_manifest& m, const fs::path& stage) const {
        for (const auto& f : m.files) {
            fs::path obj = object(f.sha256);
            std::error_code ec;
            if (fs::file_size(obj, ec) != f.size || ec) throw cache_error("object " + f.sha256 + " missing or of the wrong size");
            const bool verified = verified_hash(obj) == f.sha256;  // before the touch changes its stat
            touch_object(obj);
            if (verified) {
                copy_file_known(obj, stage / f.path, f.sha256);
            } else {
                written_file w = copy_file_hashed(obj, stage / f.path);
                if (w.size != f.size || w.sha256 != f.sha256) {
                    fs::remove(obj, ec);
                    fs::remove(stage / f.path, ec);
                    throw cache_error("object " + f.sha256 + " is corrupt (removed)");
                }
            }
            remember_verified(obj, f.sha256);
        }
    }

    /// An object's SHA-256 as verified before (when it was stored, or copied out by a hit),
    /// remembered in probes/ under its path, device, inode, size, mtime and ctime as a source
    /// file's hash is (cache_key.hpp): a hit then copies without reading the object to hash it,
    /// and any write to the object (a corruption) changes its ctime and brings the check back.
    std::optional<std::string> verified_hash(const fs::path& obj) const {
        struct stat st {};
        return detail::recalled_hash(detail::file_hash_note(obj, probes(), st));
    }

    /// Remembers that `obj` holds `sha` in its current state. Unlike a source file's hash this
    /// needs no "racily clean" delay: cas/ is written only by modelexport, once per object
    /// (temp file, fsync, rename), and later changed only by touch_object().
    void remember_verified(const fs::path& obj, const std::string& sha) const {
        struct stat st {};
        fs::path note = detail::file_hash_note(obj, probes(), st);
        std::error_code ec;
        if (!note.empty() && !fs::exists(note, ec)) detail::remember(note, json{{"sha256", sha}});
    }

    /// Stores `files` of `stage` as objects, then the entry (the entry is the commit: a reader
    /// that finds it finds its objects, unless eviction raced it, which readers detect).
    cache_manifest store(const std::string& key, const fs::path& stage, const std::vector<std::string>& files, const json& table) const {
        cache_manifest m;
        m.table = table;
        std::vector<staged_object> staged = stage_objects(stage, files);
        for (const auto& o : staged) m.files.push_back(o.file);
        commit_staged(staged);
        put_entry(key, manifest_text(m));
        return m;
    }

    /// An object copied into cas/ under a temporary name: neither durable nor named yet.
    struct staged_object {
        cached_file file;
        fs::path tmp;
    };

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
            for (const auto& [name, from] : named) {
                if (!detail::is_plain_name(name)) throw cache_error("cannot cache '" + name + "'");
                fs::create_directories(root_ / "cas");
                out.push_back({{name, 0, {}}, temp_in(root_ / "cas")});
                written_file w = copy_file_hashed(from, out.back().tmp, {}, false);
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
                detail::fsync_or_throw(open_or_throw(o.tmp, O_RDONLY).get(), o.tmp);
                commit_object(o.tmp, o.file.sha256);
            }
        } catch (...) {
            remove_staged(staged);
            throw;
        }
    }

    static void remove_staged(const std::vector<staged_object>& staged) {
        std::error_code ec;
        for (const auto& o : staged) fs::remove(o.tmp, ec);
    }

    /// Renames a verified temporary file (in cas/) to its object name.
    void commit_object(const fs::path& tmp, const std::string& sha) const {
        std::error_code ec;
        if (fs::is_regular_file(object(sha), ec)) {  // same name, same bytes (readers verify anyway)
            fs::remove(tmp, ec);
            touch_object(object(sha));
            return;
        }
        fs::rename(tmp, object(sha));
        fsync_directory(root_ / "cas");
        remember_verified(object(sha), sha);  // its bytes were hashed as they were written
    }

    /// Writes an entry atomically.
    void put_entry(const std::string& key, const std::string& text) const {
        fs::create_directories(root_ / "ac");
        fs::path tmp = temp_in(root_ / "ac");
        write_file(tmp, text);
        fs::rename(tmp, entry(key));
        fsync_directory(root_ / "ac");
    }

    // Background stores (export_cache.hpp): a store that runs after its export returned holds
    // an exclusive flock on pending/<key> from before the export returns until it has uploaded;
    // once its entry is written it writes "local done" into the marker. A lookup of that key
    // waits for the entry (or that line, or the lock's end: a store that died or failed);
    // `cache wait` and prune/clear/verify wait for every store. A store that died left an
    // unlocked file: nobody waits for it, and prune removes it after an hour.

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
        fs::create_directories(root_ / "pending");
        for (int attempt = 0; attempt < 10; ++attempt) {
            unique_fd fd(::open(pending(key).c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
            if (!fd) throw cache_error(pending(key).string() + ": " + std::strerror(errno));
            if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
                if (errno != EWOULDBLOCK) return store_claim();  // no flock here: no marker
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
            struct stat held {}, named {};
            if (::fstat(fd.get(), &held) == 0 && ::lstat(pending(key).c_str(), &named) == 0 && held.st_ino == named.st_ino &&
                held.st_dev == named.st_dev)
                return {std::move(fd), false};
        }
        return {unique_fd(), true};
    }

    /// The store's entry is written: lookups stop waiting for it (the upload may go on).
    static void local_done(int marker) { (void)!::pwrite(marker, "local done\n", 11, 0); }

    /// The store is over: its marker goes (the lock goes with the process).
    void end_store(const std::string& key) const {
        std::error_code ec;
        fs::remove(pending(key), ec);
    }

    /// Waits while a background store of `key` runs and has not written its entry yet.
    void wait_for_entry(const std::string& key) const {
        unique_fd fd(::open(pending(key).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        std::error_code ec;
        struct stat st {};
        while (fd && !fs::exists(entry(key), ec) && ::fstat(fd.get(), &st) == 0 && st.st_size == 0 && locked(fd.get())) pause();
    }

    /// How many background stores of this cache are running now.
    std::size_t running_stores() const {
        std::size_t n = 0;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(root_ / "pending", ec)) {
            unique_fd fd(::open(e.path().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            n += fd && locked(fd.get());
        }
        return n;
    }

    /// Waits for every background store of this cache (uploads included), for at most `limit`
    /// when it is positive; returns how many were running and how many still are.
    std::pair<std::size_t, std::size_t> wait_for_stores(std::chrono::seconds limit = std::chrono::seconds(0)) const {
        const auto until = std::chrono::steady_clock::now() + limit;
        std::size_t waited = 0, left = 0;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(root_ / "pending", ec)) {
            unique_fd fd(::open(e.path().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            if (!fd || !locked(fd.get())) continue;
            ++waited;
            while (locked(fd.get()) && (limit.count() <= 0 || std::chrono::steady_clock::now() < until)) pause();
            left += locked(fd.get());
        }
        return {waited, left};
    }

    /// Appends a line to store.log: what a background store has to say (its failures are
    /// misses for later exports, but someone debugging a miss wants to read them). Kept small.
    void log(const std::string& line) const {
        fs::path p = root_ / "store.log";
        std::error_code ec;
        if (fs::file_size(p, ec) > (1u << 20) && !ec) fs::remove(p, ec);
        unique_fd fd(::open(p.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!fd) return;
        std::time_t now = std::time(nullptr);
        char stamp[32] = {};
        std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
        std::string text = std::string(stamp) + " " + line + "\n";
        (void)!::write(fd.get(), text.data(), text.size());  // one write: lines of concurrent stores do not interleave
    }

    cache_stats stats() const {
        cache_stats s;
        for (const auto& f : files()) {
            (f.is_entry ? s.entries : s.objects)++;
            s.bytes += f.size;
        }
        return s;
    }

    /// Deletes least recently used entries and objects until the cache holds at most `max_bytes`;
    /// temporary files of crashed writers go once they are an hour old. Returns bytes freed.
    std::uintmax_t prune(std::uintmax_t max_bytes) const {
        auto all = files();
        std::uintmax_t total = 0, freed = 0;
        auto now = fs::file_time_type::clock::now();
        std::vector<entry_file> kept;
        for (auto& f : all) {
            if (f.is_temp) {
                std::error_code ec;
                if (now - f.mtime > std::chrono::hours(1) && fs::remove(f.path, ec)) freed += f.size;
                continue;
            }
            total += f.size;
            kept.push_back(f);
        }
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(probes(), ec)) {  // hashes of files in states long gone (recomputed if not)
            std::error_code ec2;
            if (e.path().filename().string().rfind("file-", 0) == 0 && now - e.last_write_time(ec2) > std::chrono::hours(24 * 7)) fs::remove(e.path(), ec2);
        }
        for (const auto& e : fs::directory_iterator(root_ / "pending", ec)) {  // markers of stores that died
            unique_fd fd(::open(e.path().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
            std::error_code ec2;
            if (fd && !locked(fd.get()) && now - e.last_write_time(ec2) > std::chrono::hours(1)) fs::remove(e.path(), ec2);
        }
        std::sort(kept.begin(), kept.end(), [](const entry_file& a, const entry_file& b) { return a.mtime < b.mtime; });
        for (const auto& f : kept) {
            if (total <= max_bytes) break;
            std::error_code ec;
            if (fs::remove(f.path, ec)) {
                total -= f.size;
                freed += f.size;
            }
        }
        return freed;
    }

    /// Removes everything the cache holds (not the directory itself, which the user may have made).
    void clear() const {
        std::error_code ec;
        for (const char* sub : {"ac", "cas", "probes"}) fs::remove_all(root_ / sub, ec);
    }

    /// Re-hashes every object and checks every entry; removes what is bad.
    cache_verify_result verify() const {
        cache_verify_result r;
        std::error_code ec;
        for (const auto& f : files()) {
            if (f.is_temp) continue;
            if (!f.is_entry) {
                ++r.objects;
                if (f.path.filename().string() != hash_file(f.path)) {
                    ++r.bad_objects;
                    fs::remove(f.path, ec);
                }
            }
        }
        for (const auto& f : files()) {
            if (!f.is_entry || f.is_temp) continue;
            ++r.entries;
            bool ok = false;
            try {
                cache_manifest m = parse_manifest(read_text_file(f.path, max_manifest_bytes));
                ok = std::all_of(m.files.begin(), m.files.end(), [&](const cached_file& c) { return fs::file_size(object(c.sha256), ec) == c.size && !ec; });
            } catch (const std::exception&) {
            }
            if (!ok) {
                ++r.broken_entries;
                fs::remove(f.path, ec);
            }
        }
        return r;
    }

private:
    struct entry_file {
        fs::path path;
        std::uintmax_t size = 0;
        fs::file_time_type mtime;
        bool is_entry = false, is_temp = false;
    };

    std::vector<entry_file> files() const {
        std::vector<entry_file> out;
        for (const char* sub : {"ac", "cas"}) {
            std::error_code ec;
            for (const auto& e : fs::directory_iterator(root_ / sub, ec)) {
                std::error_code ec2;
                if (!e.is_regular_file(ec2)) continue;
                entry_file f{e.path(), e.file_size(ec2), e.last_write_time(ec2), sub[0] == 'a',
                             e.path().filename().string().rfind(".tmp-", 0) == 0};
                out.push_back(std::move(f));
            }
        }
        return out;
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

    /// Marks a file as recently used for LRU eviction.
    static void touch(const fs::path& p) { ::utimensat(AT_FDCWD, p.c_str(), nullptr, 0); }

    /// The same for an object, at most once an hour: a touch changes the stat its verified hash
    /// is remembered under, and an hour is fine grain enough for eviction.
    static void touch_object(const fs::path& p) {
        std::error_code ec;
        auto mtime = fs::last_write_time(p, ec);
        if (!ec && fs::file_time_type::clock::now() - mtime > std::chrono::hours(1)) touch(p);
    }

    fs::path root_;
};

}  // namespace modelexport
