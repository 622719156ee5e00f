// modelexport/export/source.hpp — where a model comes from: a local directory or the
// offline Hugging Face Hub cache. Never the network.
//
// Cache layout (huggingface_hub):
//   <cache>/models--<org>--<name>/refs/<branch-or-tag>     -> commit hash (text)
//   <cache>/models--<org>--<name>/snapshots/<commit>/<file> -> symlink into ../../blobs/<hash>
#pragma once

#include "modelexport/detail/json_file.hpp"
#include "modelexport/error.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace modelexport {

namespace fs = std::filesystem;

/// A parsed `org/name[@revision]` (or `name[@revision]`) Hub id.
struct hub_id {
    std::string org;  ///< may be empty for legacy root-level models ("bert-base-uncased")
    std::string name;
    std::string revision;  ///< branch, tag or commit; "main" when not given

    std::string repo() const { return org.empty() ? name : org + "/" + name; }
    /// The cache folder name huggingface_hub uses.
    std::string cache_folder() const { return "models--" + (org.empty() ? name : org + "--" + name); }
};

namespace detail {

inline bool id_part_ok(const std::string& part) {
    if (part.empty() || part.size() > 96 || part == "." || part == "..") return false;
    for (unsigned char c : part)
        if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.')) return false;
    // No "--" or ".." anywhere, as huggingface_hub's validate_repo_id.
    return part.find("--") == std::string::npos && part.find("..") == std::string::npos && part.front() != '-' &&
           part.front() != '.' && part.back() != '.';
}

inline bool revision_ok(const std::string& rev) {
    if (rev.empty() || rev.size() > 255) return false;
    if (rev.find("..") != std::string::npos) return false;  // git refs never contain ".." (git check-ref-format)
    for (unsigned char c : rev)
        if (c < 0x21 || c == 0x7f || c == '\\') return false;  // control characters, spaces
    // Branches may contain '/', but never a path component that walks out of refs/.
    std::size_t start = 0;
    while (start <= rev.size()) {
        auto slash = rev.find('/', start);
        auto part = rev.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
        if (part.empty() || part == "." || part == "..") return false;
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    return true;
}

inline bool is_commit_hash(const std::string& s) {
    if (s.size() != 40) return false;
    for (unsigned char c : s)
        if (!std::isxdigit(c) || std::isupper(c)) return false;
    return true;
}

}  // namespace detail

/// Parses and validates a Hub id without touching the file system.
/// Throws invalid_input for `..`, absolute paths, control characters or empty parts.
inline hub_id parse_hub_id(const std::string& text) {
    auto bad = [&](const std::string& why) { return invalid_input("model id '" + text + "'", why); };
    if (text.empty()) throw bad("empty model id");
    if (text.size() > 512) throw bad("longer than 512 characters");
    for (unsigned char c : text)
        if (c < 0x20 || c == 0x7f) throw bad("contains control characters");
    hub_id id;
    std::string repo = text;
    if (auto at = text.find('@'); at != std::string::npos) {
        repo = text.substr(0, at);
        id.revision = text.substr(at + 1);
        if (!detail::revision_ok(id.revision)) throw bad("invalid revision '" + id.revision + "'");
    } else {
        id.revision = "main";
    }
    if (!repo.empty() && repo.front() == '/') throw bad("absolute paths are not Hub ids");
    auto slash = repo.find('/');
    if (slash != std::string::npos) {
        id.org = repo.substr(0, slash);
        id.name = repo.substr(slash + 1);
        if (id.name.find('/') != std::string::npos) throw bad("expected 'org/name', found more than one '/'");
        if (!detail::id_part_ok(id.org)) throw bad("invalid organisation '" + id.org + "'");
    } else {
        id.name = repo;
    }
    if (!detail::id_part_ok(id.name)) throw bad("invalid model name '" + id.name + "'");
    return id;
}

/// Where the Hub cache lives, following huggingface_hub's precedence.
inline fs::path hub_cache_dir() {
    if (const char* c = std::getenv("HF_HUB_CACHE"); c && *c) return c;
    if (const char* h = std::getenv("HF_HOME"); h && *h) return fs::path(h) / "hub";
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "huggingface" / "hub";
    if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "huggingface" / "hub";
    return fs::path(".cache") / "huggingface" / "hub";
}

/// A resolved model source: a directory to read files from, and where it came from.
struct model_source {
    enum class kind { local, hub_cache } kind = kind::local;
    std::string spec;      ///< what the user wrote
    fs::path dir;          ///< directory holding config.json (a snapshot for the cache)
    fs::path boundary;     ///< files (after following links) must stay inside this folder
    std::string revision;  ///< hub only: the revision asked for
    std::string commit;    ///< hub only: the commit it resolved to
    fs::path ref;  ///< hub only: the refs/<revision> file the commit came from; empty for a commit given as such

    bool from_cache() const { return kind == kind::hub_cache; }

    /// The real path of a file of this source; refuses links that leave `boundary`.
    /// Returns nullopt when the file does not exist.
    std::optional<fs::path> file(const std::string& name) const {
        fs::path p = dir / name;
        std::error_code ec;
        auto st = fs::symlink_status(p, ec);
        if (ec || !fs::exists(st)) return std::nullopt;
        fs::path real = fs::canonical(p, ec);
        if (ec) throw invalid_input(p.string(), "is a broken link (" + ec.message() + ")");
        if (!is_within(real, boundary))
            throw invalid_input(
                p.string(), "links outside " + boundary.string() + " (to " + real.string() + "); refusing to read it");
        if (!fs::is_regular_file(real)) throw invalid_input(p.string(), "is not a regular file");
        return real;
    }

    static bool is_within(const fs::path& real, const fs::path& folder) { return path_within(real, folder); }
};

namespace detail {

/// A refs/<name> file holds a 40-hex commit and maybe a newline. It is read
/// with a small bound (never into memory whole), without blocking on a FIFO.
inline constexpr std::size_t max_ref_bytes = 256;

inline std::string read_ref(const fs::path& ref) {
    int fd = ::open(ref.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw invalid_input(ref.string(), "cannot be read");
    struct stat st {};
    bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    char buf[max_ref_bytes + 1];
    ssize_t n = regular ? ::read(fd, buf, sizeof buf) : -1;
    ::close(fd);
    if (!regular) throw invalid_input(ref.string(), "is not a regular file");
    if (n < 0) throw invalid_input(ref.string(), "cannot be read");
    if (static_cast<std::size_t>(n) > max_ref_bytes)
        throw invalid_input(ref.string(),
                            "larger than " + std::to_string(max_ref_bytes) + " bytes; does not hold a commit hash");
    std::string commit(buf, static_cast<std::size_t>(n));
    commit = commit.substr(0, commit.find('\n'));
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
    return commit;
}

inline model_source resolve_in_cache(const std::string& spec, const hub_id& id, const fs::path& cache,
                                     std::vector<std::string>& searched) {
    fs::path repo = cache / id.cache_folder();
    searched.push_back(repo.string());
    std::error_code ec;
    if (!fs::is_directory(repo, ec)) return {};
    std::string commit;
    fs::path ref = repo / "refs" / id.revision;
    bool from_ref = fs::is_regular_file(ref, ec);
    // A ref read through a link (or a link on the way in refs/) must stay in the repository
    // folder, as every file the source gives does (model_source::file): it names the snapshot.
    if (fs::exists(fs::symlink_status(ref, ec)) && !path_within(fs::weakly_canonical(ref, ec), fs::canonical(repo, ec)))
        throw invalid_input(ref.string(), "links outside the repository folder " + repo.string());
    if (from_ref) {
        commit = read_ref(ref);
        if (!is_commit_hash(commit)) throw invalid_input(ref.string(), "does not hold a commit hash");
    } else if (is_commit_hash(id.revision)) {
        commit = id.revision;
    } else {
        throw model_not_found(
            spec, "revision '" + id.revision + "' is not in the cache (no " + ref.string() + ")",
            "download it first: huggingface-cli download " + id.repo() + " --revision " + id.revision);
    }
    fs::path snapshot = repo / "snapshots" / commit;
    if (!fs::is_directory(snapshot, ec))
        throw model_not_found(spec, "the cache names commit " + commit + " but has no " + snapshot.string());
    model_source src;
    src.kind = model_source::kind::hub_cache;
    src.spec = spec;
    src.dir = snapshot;
    src.boundary = fs::canonical(repo);
    src.revision = id.revision;
    src.commit = commit;
    if (from_ref) src.ref = src.boundary / "refs" / id.revision;
    return src;
}

}  // namespace detail

/// Resolves what the user named: an existing directory is a local source;
/// anything else must be a valid Hub id present in the offline cache.
inline model_source resolve_source(const std::string& spec, const fs::path& cache = hub_cache_dir()) {
    std::error_code ec;
    if (spec.empty()) throw usage_error("", "empty model source");
    if (fs::is_directory(spec, ec)) {
        model_source src;
        src.spec = spec;
        src.dir = fs::canonical(spec);
        src.boundary = src.dir;
        return src;
    }
    std::vector<std::string> searched{fs::absolute(spec).lexically_normal().string() + " (local directory)"};
    if (spec.front() == '/' || spec.front() == '.') throw model_not_found(spec, "no such directory");
    hub_id id = parse_hub_id(spec);
    model_source src = detail::resolve_in_cache(spec, id, cache, searched);
    if (!src.dir.empty()) return src;
    std::string where;
    for (const auto& s : searched) where += (where.empty() ? "" : ", ") + s;
    throw model_not_found(spec, "model not found; searched " + where,
                          "set HF_HUB_CACHE or HF_HOME, or pass a local directory");
}

/// The source's config.json (its path and document); config_missing when it has none.
inline std::pair<fs::path, json> read_source_config(const model_source& src) {
    auto path = src.file("config.json");
    if (!path)
        throw config_missing(
            src.spec, "config.json required but the source has none",
            "Optimum's from_pretrained cannot infer the model without it; add the model's config.json");
    return {*path, read_json_object(*path)};
}

}  // namespace modelexport
