// modelexport/cache/key.hpp — the export cache key (docs/design.md §10).
//
// The key is the SHA-256 of a canonical record of everything that can change the
// bytes the strategy step produces (the ONNX files and the module table). Each
// field is written as `name <length>:<value>\n`, so no value can imitate a field
// boundary, and the record is printable (`modelexport cache key` shows it to
// explain a miss). Absolute paths and times never enter it: two machines with the
// same inputs compute the same key, which is what makes a shared cache useful.
#pragma once

#include "modelexport/detail/file_copy.hpp"
#include "modelexport/detail/json_file.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/detail/process.hpp"
#include "modelexport/package/file_roles.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <optional>

#include <string>
#include <utility>
#include <vector>

namespace modelexport {

/// Bump when the record's fields or the cached unit's format change: old entries become misses.
constexpr int cache_key_format = 1;

/// The key could not be computed (e.g. the interpreter does not start): the export runs uncached.
class cache_key_error : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// A canonical, length-prefixed record and its SHA-256.
class key_record {
public:
    void add(const std::string& field, const std::string& value) {
        text_ += field + " " + std::to_string(value.size()) + ":" + value + "\n";
    }
    const std::string& text() const { return text_; }
    std::string key() const {
        sha256 h;
        h.update(text_.data(), text_.size());
        return h.hex();
    }

private:
    std::string text_;
};

/// What the export contributes to the key; export.hpp fills it from its options.
struct cache_key_inputs {
    std::string strategy;                                      ///< htp or command (prebuilt is not cached)
    std::vector<std::pair<std::string, std::string>> options;  ///< name -> value of every ONNX-affecting option
    std::vector<fs::path> exporter_files;                      ///< htp_exporter.py, htp_weights.py (hashed, names only)
    std::string python;                                        ///< htp: the interpreter, identified by probing it
    fs::path source_dir;                                       ///< files are keyed relative to it
    std::vector<fs::path> source_files;                        ///< what reaches the exporter (see exporter_inputs)
    std::string salt;                                          ///< $MODELEXPORT_CACHE_SALT: a user's way to invalidate
    std::vector<fs::path> read;  ///< not keyed: every file the strategy reads, for the depfile
};

/// Source files that can change the exporter's output: all but tokenizer, processor and
/// generation files, which are copied into the package after the export (editing them is a hit).
inline std::vector<fs::path> exporter_inputs(const std::vector<fs::path>& source_files) {
    std::vector<fs::path> out;
    for (const auto& f : source_files) {
        auto role = role_of(f.filename().string());
        if (role && (*role == file_role::tokenizer || *role == file_role::processor || *role == file_role::generation))
            continue;
        out.push_back(f);
    }
    return out;
}

namespace detail {

inline long long mtime_ns(const fs::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return -1;
    return static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

/// Asks the interpreter what it is. Prints one JSON object; `stamps` are files whose mtimes
/// tell a later run that a package was upgraded (the interpreter's own mtime would not).
inline constexpr const char* probe_script = R"(import json, sys, platform
d = {"python": platform.python_implementation() + " " + platform.python_version(), "stamps": []}
try:
    import torch, torch.version
    d["torch"] = torch.__version__; d["torch_git"] = getattr(torch.version, "git_version", "")
    d["stamps"].append(torch.version.__file__)
except Exception as e:
    d["torch"] = "none: " + type(e).__name__
try:
    import onnx
    d["onnx"] = onnx.__version__; d["stamps"].append(onnx.__file__)
except Exception as e:
    d["onnx"] = "none: " + type(e).__name__
print(json.dumps(d, sort_keys=True))
)";

/// The pid namespace this process sees (the inode of /proc/self/ns/pid): a pid names a
/// process only within it, and a cache directory may be shared by containers.
inline std::string pid_namespace() {
    struct stat st {};
    return ::stat("/proc/self/ns/pid", &st) == 0 ? std::to_string(st.st_ino) : "0";
}

/// A fresh name for a temporary file of this process in the cache: `.tmp-<pidns>-<pid>-<n>-<time>`,
/// so that the next process can tell one whose writer is dead (temp_owner_gone).
inline std::string temp_name() {
    static std::atomic<unsigned> counter{0};
    static const std::string ns = pid_namespace();
    auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    return ".tmp-" + ns + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
           std::to_string(now);
}

/// True when `name` is a temp_name() whose process is gone: it was made in this pid namespace
/// by a pid that no longer exists (a writer killed, even by SIGKILL). Anything else (another
/// namespace, a pid in use, another form) is not known to be stale.
inline bool temp_owner_gone(const std::string& name) {
    static const std::string prefix = ".tmp-" + pid_namespace() + "-";
    if (name.rfind(prefix, 0) != 0) return false;
    char* end = nullptr;
    long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    return pid > 0 && end && *end == '-' && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

/// A note kept in the probe directory: written whole (temp file, rename) or not at all.
/// The temporary file, the note and its directory are never followed through a link.
inline void remember(const fs::path& note, const json& value) {
    try {
        fs::path tmp = note.parent_path() / temp_name();
        write_file(tmp, value.dump());
        if (::rename(tmp.c_str(), note.c_str()) != 0) ::unlink(tmp.c_str());
    } catch (const std::exception&) {  // remembering is an optimisation
    }
}

/// A note written by remember(); throws when absent, unreadable, a link or not a regular file (the caller recomputes).
inline json recall(const fs::path& note) {
    return parse_json_text(read_text_file(note, 1u << 16, O_NOFOLLOW), note.string(), {1u << 16, 8});
}

}  // namespace detail

namespace detail {

/// The note remembered_file_hash() keeps for a file stat'ed as `st` (device, inode, size, mtime,
/// ctime), known by `name` (its absolute path, as the user would name it); empty without a probe directory.
inline fs::path stat_hash_note(const std::string& name, const fs::path& probe_dir, const struct stat& st) {
    if (probe_dir.empty()) return {};
    std::string identity = name;
    for (long long v :
         {static_cast<long long>(st.st_dev), static_cast<long long>(st.st_ino), static_cast<long long>(st.st_size),
          static_cast<long long>(st.st_mtim.tv_sec), static_cast<long long>(st.st_mtim.tv_nsec),
          static_cast<long long>(st.st_ctim.tv_sec), static_cast<long long>(st.st_ctim.tv_nsec)})
        identity += "\n" + std::to_string(v);
    sha256 h;
    h.update(identity.data(), identity.size());
    return probe_dir / ("file-" + h.hex() + ".json");
}

/// The same for `file` in its current state; empty when there is no probe directory or the file cannot be stat'ed.
inline fs::path file_hash_note(const fs::path& file, const fs::path& probe_dir, struct stat& st) {
    if (probe_dir.empty() || ::stat(file.c_str(), &st) != 0) return {};
    return stat_hash_note(fs::absolute(file).lexically_normal().string(), probe_dir, st);
}

/// The hash a note holds, nullopt when there is none (or it is unusable).
inline std::optional<std::string> recalled_hash(const fs::path& note) {
    if (note.empty()) return std::nullopt;
    try {
        std::string known = recall(note).at("sha256").get<std::string>();
        if (known.size() == 64) return known;
    } catch (const std::exception&) {  // not seen in this state
    }
    return std::nullopt;
}

}  // namespace detail

/// A file's SHA-256, remembered in `probe_dir` under the file's device, inode, size, mtime and
/// ctime, as git's index and ccache's direct mode do: a cache hit then costs a stat instead of
/// reading gigabytes of weights again. Any write changes mtime and ctime, so an edited file has
/// another note. A file changed in the last two seconds is hashed but not remembered: its
/// timestamps could still equal those of a later write within the clock's granularity (git's
/// "racily clean" rule).
inline std::string remembered_file_hash(const fs::path& file, const fs::path& probe_dir) {
    struct stat st {};
    fs::path note = detail::file_hash_note(file, probe_dir, st);
    if (note.empty()) return hash_file(file);
    if (auto known = detail::recalled_hash(note)) return *known;
    std::string digest = hash_file(file);
    const long long now = static_cast<long long>(::time(nullptr));
    if (now - st.st_mtim.tv_sec > 2 && now - st.st_ctim.tv_sec > 2) detail::remember(note, json{{"sha256", digest}});
    return digest;
}

namespace detail {

/// Where interpreter_identity() keeps `python`'s identity: under its path and mtime.
inline fs::path interpreter_note(const std::string& python, const fs::path& probe_dir, std::string& program) {
    program = find_program(python);
    if (program.empty()) throw cache_key_error("interpreter " + python + " not found");
    fs::path abs = fs::absolute(program);
    std::error_code ec;
    fs::path target = fs::canonical(abs, ec);
    std::string where = abs.string() + "\n" + std::to_string(mtime_ns(ec ? abs : target));
    sha256 h;
    h.update(where.data(), where.size());
    return probe_dir / (h.hex() + ".json");
}

/// The identity a note holds while none of its stamp files changed; nullopt otherwise.
inline std::optional<std::string> recalled_identity(const fs::path& note) {
    try {
        json p = recall(note);
        bool fresh = true;
        for (const auto& [file, stamp] : p.at("stamps").items())
            fresh = fresh && mtime_ns(file) == stamp.get<long long>();
        if (fresh) return p.at("identity").get<std::string>();
    } catch (const std::exception&) {  // absent or unusable: probe again
    }
    return std::nullopt;
}

}  // namespace detail

/// The interpreter's identity (implementation and version, torch version and git hash, onnx
/// version), never its path. Probing imports torch (seconds), so the answer is kept in
/// `probe_dir` under the interpreter's path and mtime and reused while no stamp file changed.
inline std::string interpreter_identity(const std::string& python, const fs::path& probe_dir) {
    std::string program;
    fs::path remembered = detail::interpreter_note(python, probe_dir, program);
    if (auto known = detail::recalled_identity(remembered)) return *known;
    run_options ro;
    ro.timeout = std::chrono::seconds(120);
    ro.env = {{"PYTHONDONTWRITEBYTECODE", "1"}};
    run_result r = run_process(program, {"-c", detail::probe_script}, ro);
    if (!r.ok()) throw cache_key_error("probing " + python + " failed (" + r.describe(ro.timeout) + ")");
    json d;
    try {
        d = parse_json_text(r.out, "interpreter probe", {1u << 16, 8});
    } catch (const std::exception& e) {
        throw cache_key_error(std::string("probing ") + python + ": " + e.what());
    }
    json stamps = json::object();
    for (const auto& s : d.value("stamps", json::array()))
        stamps[s.get<std::string>()] = detail::mtime_ns(s.get<std::string>());
    d.erase("stamps");
    std::string identity = d.dump();  // sorted keys: canonical
    detail::remember(remembered, json{{"identity", identity}, {"stamps", stamps}});
    return identity;
}

/// `uname -m` and the OS: the same torch can export differently elsewhere.
inline std::string platform_identity() {
    struct utsname u {};
    if (::uname(&u) != 0) return "unknown";
    return std::string(u.sysname) + " " + u.machine;
}

/// The record for an export. Hashes every input file (weights too: the key must change when
/// they do, and their names alone say nothing), remembering the hashes of unchanged files.
MODELEXPORT_ENTRY key_record make_cache_key(const cache_key_inputs& in, const fs::path& probe_dir);

#if MODELEXPORT_DEFINES(CACHE)
MODELEXPORT_ENTRY key_record make_cache_key(const cache_key_inputs& in, const fs::path& probe_dir) {
    key_record r;
    r.add("format", "modelexport-export-cache " + std::to_string(cache_key_format));
    r.add("strategy", in.strategy);
    for (const auto& [name, value] : in.options) r.add("option " + name, value);
    for (const auto& f : in.exporter_files) r.add("exporter " + f.filename().string(), hash_file(f));
    if (!in.python.empty()) r.add("interpreter", interpreter_identity(in.python, probe_dir));
    r.add("platform", platform_identity());
    std::vector<std::pair<std::string, fs::path>> files;
    for (const auto& f : in.source_files) files.emplace_back(f.lexically_relative(in.source_dir).generic_string(), f);
    std::sort(files.begin(), files.end());
    for (const auto& [rel, f] : files) r.add("source " + rel, remembered_file_hash(f, probe_dir));
    if (!in.salt.empty()) r.add("salt", in.salt);
    return r;
}
#endif

/// True when make_cache_key() would read no source file and start no interpreter: every
/// hash and the interpreter's identity are remembered. Then the key costs a few stats, and
/// an export need not start its exporter before knowing whether it is a hit (cache/export_cache.hpp).
inline bool cache_key_is_remembered(const cache_key_inputs& in, const fs::path& probe_dir) {
    try {
        std::string program;
        if (!in.python.empty() && !detail::recalled_identity(detail::interpreter_note(in.python, probe_dir, program)))
            return false;
        for (const auto& f : in.source_files) {
            struct stat st {};
            if (!detail::recalled_hash(detail::file_hash_note(f, probe_dir, st))) return false;
        }
        return true;
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace modelexport
