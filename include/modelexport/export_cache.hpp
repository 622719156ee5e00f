// modelexport/export_cache.hpp — the export cache as the export sees it (docs/design.md §10):
// `lookup()` before the strategy runs, `store()` after it, nothing else.
//
// What is cached is the strategy's output (ONNX files and module table), before projection,
// embedding and the configuration copy, so the package is always assembled from it plus the
// current configuration files: a tokenizer edit is a hit that costs only the copy. A cache
// never fails a build or changes a result: every failure below is caught and reported as a
// miss (a note under --verbose), and the export runs as it would without a cache.
#pragma once

#include "modelexport/cache_key.hpp"
#include "modelexport/cache_store.hpp"
#include "modelexport/hierarchy.hpp"
#include "modelexport/source.hpp"
#include "modelexport/remote_cache.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace modelexport {

struct cache_settings {
    bool enabled = false;  ///< library callers opt in; the CLI enables it unless --no-cache
    fs::path dir = local_cache::default_root();
    std::uintmax_t max_size = local_cache::default_max_size;
    std::optional<remote_settings> remote;

    /// The environment's settings: MODELEXPORT_CACHE_DIR, MODELEXPORT_CACHE_MAX_SIZE, MODELEXPORT_REMOTE_CACHE*;
    /// MODELEXPORT_NO_CACHE=1 is --no-cache for a whole build or test suite.
    static cache_settings from_env() {
        cache_settings s;
        const char* off = std::getenv("MODELEXPORT_NO_CACHE");
        s.enabled = !(off && std::string(off) == "1");
        if (const char* m = std::getenv("MODELEXPORT_CACHE_MAX_SIZE"))
            if (auto n = parse_size(m)) s.max_size = *n;
        s.remote = remote_settings::from_env();
        return s;
    }
};

/// What the cache did for one export, for --report.
struct cache_outcome {
    std::string result = "disabled";  ///< hit-local | hit-remote | miss | disabled
    std::string key;
    double seconds = 0;  ///< spent in the cache (key, lookup, store), not in the exporter
    json to_json() const { return {{"result", result}, {"key", key}, {"seconds", seconds}}; }
};

class export_cache {
public:
    using note_fn = std::function<void(const std::string&)>;

    /// `inputs` empty: not cacheable (prebuilt is already a copy; a cache would add nothing).
    export_cache(const cache_settings& s, const std::optional<cache_key_inputs>& inputs, note_fn note)
        : s_(s), local_(s.dir), note_(std::move(note)) {
        if (!s_.enabled || !inputs) return;
        timed(false, [&] {
            key_ = make_cache_key(*inputs, local_.probes()).key();
            out_.key = key_;
            out_.result = "miss";
        });
    }

    bool active() const { return !key_.empty(); }
    const cache_outcome& outcome() const { return out_; }

    /// Fills `stage` with a cached result; the manifest (files and table) on a hit.
    std::optional<cache_manifest> lookup(const fs::path& stage) {
        std::optional<cache_manifest> hit;
        if (!active()) return hit;
        timed(false, [&] { hit = restore(local_.find(key_), stage); });
        if (hit) out_.result = "hit-local";
        else if (remote_usable()) timed(true, [&] { hit = fetch_remote(stage); });
        if (hit && out_.result == "miss") out_.result = "hit-remote";
        return hit;
    }

    /// Keeps what the strategy wrote into `stage` (the named files and its table), then shares it.
    void store(const fs::path& stage, const std::vector<std::string>& files, const json& table) {
        if (!active() || out_.result != "miss") return;
        std::optional<cache_manifest> m;
        timed(false, [&] {
            m = local_.store(key_, stage, files, table);
            local_.prune(s_.max_size);
        });
        if (m && remote_usable() && !s_.remote->read_only) timed(true, [&] { upload(*m); });
    }

private:
    /// Runs `f`, adding its time to the outcome; a failure becomes a note and, for the remote, ends its use.
    template <class F>
    void timed(bool remote, F&& f) {
        auto start = std::chrono::steady_clock::now();
        try {
            f();
        } catch (const std::exception& e) {  // cache_error, filesystem_error, io_error, bad JSON: all misses
            note("export cache: " + std::string(e.what()));
            remote_failed_ = remote_failed_ || remote;  // a server that failed once is not asked again in this export (no second timeout)
        }
        out_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }

    bool remote_usable() const { return s_.remote && !remote_failed_; }

    void note(const std::string& m) const {
        if (note_) note_(m);
    }

    /// The remote's entry, its objects checked into the local cache, then the entry stored locally.
    std::optional<cache_manifest> fetch_remote(const fs::path& stage) {
        remote_cache remote(*s_.remote);
        auto text = remote.get_entry(key_);
        if (!text) return std::nullopt;
        cache_manifest m = parse_manifest(*text);
        for (const auto& f : m.files) {
            std::error_code ec;
            if (fs::file_size(local_.object(f.sha256), ec) == f.size && !ec) continue;
            remote.fetch_object(f, local_);
        }
        local_.put_entry(key_, manifest_text(m));
        local_.prune(s_.max_size);
        return restore(m, stage);  // verifies again: a local object of the right size may still be corrupt
    }

    /// Copies a manifest's objects into `stage`; on any failure removes what it copied, so the
    /// strategy then runs on a stage as clean as without a cache.
    std::optional<cache_manifest> restore(const std::optional<cache_manifest>& m, const fs::path& stage) {
        if (!m) return m;
        try {
            // A table of the wrong shape is a miss here, not an error after the files were restored.
            traced_modules_from_json(m->table);
            m->table.value("torch_version", std::string());
            m->table.value("onnx_exporter", std::string());
            m->table.value("parameters", 0LL);
            local_.materialize(*m, stage);
            return m;
        } catch (...) {
            std::error_code ec;
            for (const auto& f : m->files) fs::remove(stage / f.path, ec);
            throw;
        }
    }

    /// Objects first (skipping those the server has), the entry last: the entry's PUT is the commit.
    void upload(const cache_manifest& m) {
        remote_cache remote(*s_.remote);
        for (const auto& f : m.files)
            if (!remote.has("cas/" + f.sha256)) remote.put_file("cas/" + f.sha256, local_.object(f.sha256));
        remote.put_text("ac/" + key_, manifest_text(m));
    }

    cache_settings s_;
    local_cache local_;
    note_fn note_;
    std::string key_;
    cache_outcome out_;
    bool remote_failed_ = false;
};

/// The exporter script, the modules it imports from beside it (htp_weights.py, htp_decoder.py,
/// htp_tasks.py), the seq2seq exporter run instead of it for encoder-decoder tasks (htp_seq2seq.py) and the task table it reads (share/tasks.json: beside it when installed, in
/// ../share/ in the source tree; the first found, as htp_tasks.py looks): all of them change
/// the ONNX bytes, so they are depfile inputs and part of the cache key. A custom
/// --exporter-script may come without the siblings.
inline std::vector<fs::path> htp_exporter_files(const fs::path& script) {
    std::vector<fs::path> out{script};
    std::error_code ec;
    const fs::path dir = script.parent_path();
    for (const char* sibling : {"htp_weights.py", "htp_decoder.py", "htp_tasks.py", "htp_seq2seq.py"})
        if (fs::path f = dir / sibling; fs::is_regular_file(f, ec)) out.push_back(f);
    for (const fs::path& table : {dir / "tasks.json", dir / ".." / "share" / "tasks.json"})
        if (fs::is_regular_file(table, ec)) {
            out.push_back(table.lexically_normal());
            break;
        }
    return out;
}

namespace detail {

// Adapters between export.hpp's types and the cache. Templates, so that this header does not
// include export.hpp (which includes it) and export.hpp's part of the cache stays a few lines.

/// The key's inputs for an export: its options, the exporter and the source files that reach it.
/// `read` is everything the strategy reports as read, so a hit gives the same depfile as a miss.
template <class Options>
cache_key_inputs cache_key_inputs_for(const Options& opt, const std::string& strategy, const std::string& task,
                                      const model_source& src, const std::vector<fs::path>& read) {
    cache_key_inputs in;
    in.strategy = strategy;
    in.source_dir = src.dir;
    in.source_files = exporter_inputs(read);
    in.read = read;
    // --embed-hierarchy, --torch-module, the layout and the timeout act after the strategy: not keyed.
    in.options = {{"task", task}};
    if (strategy == "htp") {
        in.options.push_back({"opset", std::to_string(opt.opset)});
        in.options.push_back({"model", opt.model_factory});
        in.python = opt.python;
        for (const fs::path& f : htp_exporter_files(opt.exporter_script)) {
            in.exporter_files.push_back(f);
            in.read.push_back(f);
        }
        if (!opt.model_factory.empty()) {
            fs::path file = opt.model_factory.substr(0, opt.model_factory.rfind(':'));
            in.read.push_back(file.is_absolute() ? file : src.dir / file);
            // A factory outside the source is keyed by its content, not its (absolute) path.
            if (file.is_absolute()) in.exporter_files.push_back(file);
        }
    } else {
        in.options.push_back({"command", opt.command});
        in.options.push_back({"onnx-file", opt.onnx_file});
    }
    if (const char* salt = std::getenv("MODELEXPORT_CACHE_SALT")) in.salt = salt;
    return in;
}

/// The files a strategy left in the staging directory (its hidden work files are gone by then).
inline std::vector<std::string> produced_files(const fs::path& stage) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(stage))
        if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

/// The part of a staged model that is not a file: the module table and what the exporter reported.
template <class Staged>
json cache_table(const Staged& staged) {
    json modules = json::array();
    for (const auto& m : staged.modules) {
        json j{{"path", m.path}, {"class", m.class_name}, {"torch_module", m.torch_module}};
        if (m.order) j["order"] = *m.order;
        modules.push_back(std::move(j));
    }
    return {{"modules", modules}, {"torch_version", staged.torch_version}, {"onnx_exporter", staged.onnx_exporter}, {"parameters", staged.parameters}};
}

/// A staged model rebuilt from a hit; its files are already in the staging directory.
template <class Staged>
Staged staged_from_cache(const cache_manifest& hit, const cache_key_inputs& in, const std::string& key) {
    Staged out;
    out.modules = traced_modules_from_json(hit.table);  // cannot throw: export_cache::restore parsed it
    out.torch_version = hit.table.value("torch_version", "");
    out.onnx_exporter = hit.table.value("onnx_exporter", "");
    out.parameters = hit.table.value("parameters", 0LL);
    for (const auto& f : hit.files) out.known_hashes[f.path] = f.sha256;
    out.inputs = in.read;
    out.shown = "model.onnx from the export cache (key " + key + ")";
    return out;
}

}  // namespace detail

}  // namespace modelexport

