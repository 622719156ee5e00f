// modelexport/cache/export_cache.hpp — the export cache as the export sees it (docs/design.md §10):
// `lookup_or_produce()` runs the strategy only on a miss, `store()` keeps its output, nothing else.
//
// What is cached is the strategy's output (ONNX files and module table), before projection,
// embedding and the configuration copy, so the package is always assembled from it plus the
// current configuration files: a tokenizer edit is a hit that costs only the copy. A cache
// never fails a build or changes a result: every failure below is caught and reported as a
// miss (a note under --verbose), and the export runs as it would without a cache.
#pragma once

#include "modelexport/cache/detached.hpp"
#include "modelexport/cache/key.hpp"
#include "modelexport/cache/remote.hpp"
#include "modelexport/cache/settings.hpp"
#include "modelexport/cache/store.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/export/exporter_call.hpp"
#include "modelexport/export/module_table.hpp"
#include "modelexport/export/source.hpp"
#include "modelexport/onnx/checks.hpp"
#include "modelexport/onnx/hierarchy.hpp"
#include "modelexport/onnx/stream.hpp"
#include "modelexport/package/file_roles.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace modelexport {

/// What the export cache did for one export, for --report.
struct cache_outcome {
    std::string result = "disabled";  ///< hit-local | hit-remote | miss | disabled
    std::string key;
    double seconds = 0;  ///< spent in the cache (key, lookup, store, upload), not in the exporter
    /// The same by part: key, lookup (and restore), store (copying into cas/ while hashing), and in
    /// threads beside the rest of the export: commit (fsync, rename, entry, prune) and upload.
    /// With `speculative`, key and lookup ran beside the exporter; with `background`, store is
    /// only keeping descriptors, and commit and upload happen after the export.
    std::map<std::string, double> steps;
    bool speculative = false;  ///< the exporter started while the key was computed (export_cache::lookup_or_produce)
    /// The store (and upload) went on in a detached process after the export returned: its
    /// time is not in `seconds`; `modelexport cache wait` waits for it.
    bool background = false;
    json to_json() const {
        return {{"result", result},           {"key", key},
                {"seconds", seconds},         {"steps", steps},
                {"speculative", speculative}, {"background", background}};
    }
};

namespace detail {

/// The names a cache entry may hold, checked before anything is copied: the ONNX files its
/// module table names (package model files, as a strategy writes them), and besides them only
/// model files a model may reference as external data (model.onnx_data). An entry naming
/// anything else (a script, a configuration file) is not what any strategy produces.
inline void check_entry_names(const cache_manifest& m, const std::set<std::string>& models) {
    for (const auto& name : models) {
        auto role = role_of(name);
        if (!role || *role != file_role::model || name.size() < 5 || name.substr(name.size() - 5) != ".onnx")
            throw cache_error("the module table names " + printable(name) + ", which is not an ONNX file of a package");
        if (std::none_of(m.files.begin(), m.files.end(), [&](const cached_file& f) { return f.path == name; }))
            throw cache_error("the module table names " + name + ", which the entry does not hold");
    }
    std::set<std::string> seen;
    for (const auto& f : m.files) {
        auto role = role_of(f.path);
        if (!seen.insert(f.path).second) throw cache_error("the entry lists " + f.path + " twice");
        if (!models.count(f.path) && (!role || *role != file_role::model))
            throw cache_error("the entry holds " + printable(f.path) + ", which no strategy produces");
    }
}

/// The restored models in `stage` must pass the checks every export's model gets (check_onnx:
/// external data inside the package, the ONNX checker), and every file of the entry that is not
/// one of them must be external data they reference: no file rides along unreferenced.
inline void check_restored_models(const cache_manifest& m, const std::set<std::string>& models, const fs::path& stage) {
    std::set<std::string> referenced;
    for (const auto& name : models) {
        try {
            light_model light = load_onnx_light(stage / name, name);
            for_each_tensor(light.model, [&](onnx::TensorProto& t, const tensor_site& site) {
                if (is_external(t)) referenced.insert(external_reference_of(t, site.where).location);
            });
            onnx_verdict v = check_onnx(light, stage);
            if (!v.external_data.empty()) throw cache_error(v.external_data);
            if (!v.checker->empty()) throw cache_error("fails the ONNX checker: " + *v.checker);
        } catch (const std::exception& e) {
            throw cache_error("the cached " + name + " is unusable (" + e.what() + ")");
        }
    }
    for (const auto& f : m.files)
        if (!models.count(f.path) && !referenced.count(f.path))
            throw cache_error("the entry holds " + f.path + ", which its models do not reference");
}

}  // namespace detail

class export_cache {
public:
    using note_fn = std::function<void(const std::string&)>;

    /// `inputs` empty: not cacheable (prebuilt is already a copy; a cache would add nothing).
    export_cache(const cache_settings& s, const std::optional<cache_key_inputs>& inputs, note_fn note);

    /// Joins the store's threads. A background store not launched by finish() is dropped: the
    /// export failed after its strategy ran, and no process is forked while an exception unwinds.
    ~export_cache();
    export_cache(const export_cache&) = delete;
    export_cache& operator=(const export_cache&) = delete;

    bool active() const { return !key_.empty(); }
    const cache_outcome& outcome() const { return out_; }

    /// Looks the result up; without a hit runs `produce()` (the strategy, writing into `stage`) and
    /// returns nullopt. When the key needs reading files or probing the interpreter (a cold
    /// memo: seconds for large weights) and `speculate` allows it, `produce()` starts at once in
    /// this thread while another computes the key and looks it up: a miss then pays nothing for
    /// the key, and a hit stops the exporter (its process group, cancel::abandoned) as soon as an
    /// entry is found, empties `stage` and restores the cached files (a remote entry's objects
    /// are downloaded then, with the exporter gone). With a remembered key the lookup simply comes first.
    std::optional<cache_manifest> lookup_or_produce(const fs::path& stage, bool speculate,
                                                    const std::function<void()>& produce);

    /// Keeps what the strategy wrote into `stage` (the named files and its table), then shares it.
    ///
    /// With `background` (the CLI's default) nothing is copied now: descriptors on the staged
    /// files are kept (their inodes move into the package by rename, and no step rewrites a
    /// file in place: create_file makes a new inode), and finish() hands them to a detached
    /// process that stores and uploads after the export returned. Returns no hashes then.
    ///
    /// Otherwise returns the files' SHA-256, computed while copying them into the store, which
    /// the package needs too (the export does not read them again). Only the copies are made
    /// here: making them durable and the entry (one thread), and the upload (another, reading
    /// the copies through descriptors opened now), run beside the rest of the export until finish().
    std::map<std::string, std::string> store(const fs::path& stage, const std::vector<std::string>& files,
                                             const json& table);

    /// Called once the package is committed: waits for the store's threads, or launches the
    /// background store; after it the outcome is final.
    void finish();

    /// The outcome so far, while the store's threads may still run (the report before the commit).
    cache_outcome snapshot() {
        std::lock_guard<std::mutex> lock(mutex_);
        return out_;
    }

private:
    /// What a background store takes along: descriptors on the staged files, by name, and the table;
    /// for a remote hit the manifest's files, which the copies must hash to.
    struct deferred_store {
        std::vector<std::pair<std::string, unique_fd>> files;
        json table;
        bool upload = false;
        std::vector<cached_file> expected;
        std::vector<file_state> committed;  ///< the files' state when the export ended (launch_deferred)
    };

    /// Runs `f`, adding its time to the outcome; a failure becomes a note and, for the remote, ends its use.
    template <class F>
    void timed(const char* step, bool remote, F&& f) {
        auto start = std::chrono::steady_clock::now();
        try {
            f();
        } catch (const std::exception& e) {  // cache_error, filesystem_error, io_error, bad JSON: all misses
            std::lock_guard<std::mutex> lock(mutex_);
            notes_.push_back("export cache: " + std::string(e.what()));
            remote_failed_ = remote_failed_ ||
                             remote;  // a server that failed once is not asked again in this export (no second timeout)
        }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::lock_guard<std::mutex> lock(mutex_);
        out_.seconds += s;
        out_.steps[step] += s;
    }

    /// Notes are collected (the cache's threads add them) and shown from the export's thread.
    void flush_notes() {
        std::vector<std::string> notes;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            notes.swap(notes_);
        }
        if (note_)
            for (const auto& n : notes) note_(n);
    }

    void join() {
        for (auto& t : background_)
            if (t.joinable()) t.join();
        background_.clear();
    }

    /// Whether the key costs only stats now; a cache directory refused (a link below it) is a miss later, not an error
    /// here.
    bool key_is_remembered() {
        try {
            return cache_key_is_remembered(*inputs_, local_.probes().path);
        } catch (const std::exception&) {
            return true;  // computing the key will fail at once, as a miss with its note
        }
    }

    bool remote_usable() {
        std::lock_guard<std::mutex> lock(mutex_);
        return s_.remote && !remote_failed_;
    }

    /// The key, then its entry: local (after a background store of it that is still copying),
    /// else the remote's manifest. Reads only, writes nothing into the stage: it may run beside
    /// a speculative exporter.
    void find_key_and_entry() {
        out_.result = "miss";  // a key that cannot be computed (a refused cache directory) is a miss too
        timed("key", false, [&] {
            key_ = make_cache_key(*inputs_, local_.probes().path).key();
            out_.key = key_;
        });
        if (!active()) return;
        timed("lookup", false, [&] {
            if (!(entry_ = local_.find(key_))) {
                local_.wait_for_entry(key_);
                entry_ = local_.find(key_);
            }
            if (entry_) out_.result = "hit-local";
        });
        if (!entry_ && remote_usable())
            timed("lookup", true, [&] {
                remote_cache remote(*s_.remote);
                if (auto text = remote.get_entry(key_)) entry_ = parse_manifest(*text);
            });
        if (entry_ && out_.result == "miss") out_.result = "hit-remote";
    }

    /// Restores the entry found into `stage`; a failure is a miss.
    std::optional<cache_manifest> restore_found(const fs::path& stage) {
        std::optional<cache_manifest> hit;
        if (entry_) timed("lookup", out_.result == "hit-remote", [&] { hit = restore(*entry_, stage); });
        if (!hit && entry_) out_.result = "miss";
        flush_notes();
        return hit;
    }

    /// Removes what an abandoned exporter left in the staging directory (it was empty before).
    static void empty_stage(const fs::path& stage) {
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(stage, ec)) fs::remove_all(e.path(), ec);
    }

    /// Copies a manifest's objects into `stage`: from the local store, or for a remote entry
    /// downloaded into it (size and SHA-256 checked in the same pass) unless the local store has
    /// them already. An entry naming files no strategy produces, or whose models fail the checks
    /// an export's model gets, is a miss: the cache may not add files to a package or fail an
    /// export. On any failure removes what it wrote, so the strategy then runs on a stage as
    /// clean as without a cache, and nothing of a rejected remote entry enters the local store.
    cache_manifest restore(const cache_manifest& m, const fs::path& stage) {
        std::vector<local_cache::staged_object> downloaded;
        try {
            // A table of the wrong shape is a miss here, not an error after the files were restored.
            std::set<std::string> models;
            try {
                for (const auto& name : module_table::from_json(m.table).models) models.insert(name);
            } catch (const std::exception& e) {
                throw cache_error(std::string("its module table: ") + e.what());
            }
            detail::check_entry_names(m, models);
            cache_manifest local = m;  // what the local store holds
            if (out_.result == "hit-remote") local.files = download(m, stage, downloaded);
            local_.materialize(local, stage);
            detail::check_restored_models(m, models, stage);
            if (out_.result == "hit-remote")
                keep_download(m, std::move(downloaded), local.files.size() == m.files.size());
            if (s_.background && local.files.size() < m.files.size()) {
                defer_store(stage, names_of(m), m.table, false);
                deferred_->expected = m.files;
            }
            return m;
        } catch (...) {
            std::error_code ec;
            for (const auto& f : m.files) fs::remove(stage / f.path, ec);
            local_cache::remove_staged(downloaded);
            deferred_.reset();
            throw;
        }
    }

    /// Downloads a remote entry's objects that the local store lacks into `stage`; returns the
    /// others. Without `background` the same pass writes each into cas/ under a temporary name
    /// (`pending`), kept by keep_download() once the restored entry passed its checks; with it a
    /// background store fills the local cache from the package afterwards, so the hit writes the model once.
    std::vector<cached_file> download(const cache_manifest& m, const fs::path& stage,
                                      std::vector<local_cache::staged_object>& pending) {
        remote_cache remote(*s_.remote);
        std::vector<cached_file> local;
        for (const auto& f : m.files) {
            if (local_.has_object(f))
                local.push_back(f);
            else if (s_.background)
                remote.fetch_object_to(f, stage / f.path);
            else
                pending.push_back(*remote.fetch_object(f, local_, stage / f.path, false));
        }
        return local;
    }

    /// Keeps a checked remote hit in the local store: the downloaded objects are made durable and
    /// the entry written beside the rest of the export (or, with `background`, by the background
    /// store, unless the local store had every object already).
    void keep_download(const cache_manifest& m, std::vector<local_cache::staged_object> pending, bool all_local) {
        if (s_.background) {
            if (all_local) local_.put_entry(key_, manifest_text(m));  // nothing to copy later
            return;
        }
        auto staged = std::make_shared<std::vector<local_cache::staged_object>>(std::move(pending));
        auto keep = [this, staged, m] { keep_entry(*staged, m); };
        if (staged->empty())
            keep();
        else
            background_.emplace_back([this, keep] { timed("commit", false, keep); });
    }

    /// Makes staged objects durable and named, then writes the entry (objects before the entry:
    /// a reader that finds it finds them), then prunes. Every store ends this way.
    void keep_entry(const std::vector<local_cache::staged_object>& staged, const cache_manifest& m) {
        local_.commit_staged(staged);
        local_.put_entry(key_, manifest_text(m));
        local_.prune(s_.max_size);
    }

    static std::vector<std::string> names_of(const cache_manifest& m) {
        std::vector<std::string> out;
        for (const auto& f : m.files) out.push_back(f.path);
        return out;
    }

    static std::vector<int> descriptors(const std::vector<unique_fd>& fds) {
        std::vector<int> out;
        for (const auto& fd : fds) out.push_back(fd.get());
        return out;
    }

    /// Keeps descriptors on `files` of `stage` for the background store finish() launches.
    void defer_store(const fs::path& stage, const std::vector<std::string>& files, const json& table, bool upload) {
        deferred_store d;
        for (const auto& name : files) d.files.emplace_back(name, open_or_throw(stage / name, O_RDONLY));
        d.table = table;
        d.upload = upload;
        deferred_ = std::move(d);
        out_.background = true;
    }

    /// Starts the background store in a detached process (cache/detached.hpp) holding pending/<key>,
    /// unless another process is storing this key. Without a marker (no flock on the cache's
    /// file system) or a process to be had it runs here, as without the background.
    void launch_deferred() {
        deferred_store d = std::move(*deferred_);
        deferred_.reset();
        for (const auto& f : d.files)
            d.committed.push_back(
                file_state::of(f.second.get()));  // the export is over: nothing of ours changes them now
        local_cache::store_claim claim;
        timed("store", false, [&] { claim = local_.claim_store(key_); });
        if (claim.busy) return;
        if (!claim.fd) {
            run_deferred(d, -1);
            return;
        }
        std::vector<int> keep{claim.fd.get()};
        for (const auto& f : d.files) keep.push_back(f.second.get());
        bool detached = run_detached(keep, [&] {
            cancel::deadline_ns = 0;  // --timeout bounded the export, which is over
            run_deferred(d, claim.fd.get());
            for (const auto& n : notes_) local_.log(key_.substr(0, 16) + " " + n);
        });
        if (!detached) run_deferred(d, claim.fd.get());
    }

    /// The background store itself: copies into cas/ while hashing (reading the staged inodes
    /// through /proc/self/fd), keeps nothing that changed since the export ended (a later build
    /// step editing the package in place) or that does not hash to a remote manifest's names,
    /// makes the copies durable, writes the entry, prunes, tells waiting lookups (`marker`);
    /// then uploads the stored copies, objects first and the entry last; then drops the marker.
    void run_deferred(const deferred_store& d, int marker) {
        std::vector<std::pair<std::string, fs::path>> named;
        for (const auto& [name, fd] : d.files) named.emplace_back(name, "/proc/self/fd/" + std::to_string(fd.get()));
        cache_manifest m;
        m.table = d.table;
        std::vector<unique_fd> copies;  // on the stored objects, for the upload (a rename keeps them)
        bool stored = false;
        timed("store", false, [&] {
            std::vector<local_cache::staged_object> staged = local_.stage_objects(named);
            try {
                for (std::size_t i = 0; i < staged.size(); ++i) {
                    if (file_state::of(d.files[i].second.get()) != d.committed[i])
                        throw cache_error(d.files[i].first +
                                          " changed after the export (edited in place?): not stored");
                    if (!d.expected.empty() && staged[i].file.sha256 != d.expected[i].sha256)
                        throw cache_error(d.files[i].first + " does not hash to the remote entry's " +
                                          d.expected[i].sha256 + ": not stored");
                    copies.push_back(staged[i].dir->open(staged[i].tmp));
                }
            } catch (...) {
                local_cache::remove_staged(staged);
                throw;
            }
            for (const auto& o : staged) m.files.push_back(o.file);
            keep_entry(staged, m);
            stored = true;
        });
        if (marker >= 0) local_cache::local_done(marker);
        if (stored && d.upload) timed("upload", true, [&] { upload(m, descriptors(copies)); });
        if (marker >= 0) local_.end_store(key_);
    }

    /// Objects first (skipping those the server has), the entry last: the entry's PUT is the commit.
    /// `objects` are open on the files, parallel to `m.files`.
    void upload(const cache_manifest& m, const std::vector<int>& objects) {
        remote_cache remote(*s_.remote);
        for (std::size_t i = 0; i < m.files.size(); ++i)
            if (!remote.has("cas/" + m.files[i].sha256))
                remote.put_fd("cas/" + m.files[i].sha256, objects[i], m.files[i].size);
        remote.put_text("ac/" + key_, manifest_text(m));
    }

    cache_settings s_;
    local_cache local_;
    note_fn note_;
    std::optional<cache_key_inputs> inputs_;
    std::string key_;
    std::optional<cache_manifest> entry_;     ///< what the lookup found (local, or the remote's manifest)
    std::optional<deferred_store> deferred_;  ///< the background store finish() launches
    cache_outcome out_;
    bool remote_failed_ = false;
    std::vector<std::thread> background_;
    std::mutex mutex_;  ///< guards out_'s times, notes_ and remote_failed_ while the store's thread runs
    std::vector<std::string> notes_;
};

// The members that run the cache, out of the class so that a compiled build makes their code
// once, in src/cache.cpp (detail/linkage.hpp).
#if MODELEXPORT_DEFINES(CACHE)
MODELEXPORT_ENTRY export_cache::export_cache(const cache_settings& s, const std::optional<cache_key_inputs>& inputs,
                                             note_fn note)
    : s_(s), local_(s.dir), note_(std::move(note)) {
    if (s_.enabled && inputs) inputs_ = *inputs;
}

MODELEXPORT_ENTRY export_cache::~export_cache() { join(); }

MODELEXPORT_ENTRY std::optional<cache_manifest> export_cache::lookup_or_produce(const fs::path& stage, bool speculate,
                                                                                const std::function<void()>& produce) {
    if (!inputs_) {
        produce();
        return std::nullopt;
    }
    if (!speculate || key_is_remembered()) {
        find_key_and_entry();
        std::optional<cache_manifest> hit = restore_found(stage);
        if (!hit) produce();
        return hit;
    }
    out_.speculative = true;
    std::atomic<bool> found{false};
    std::thread finder([&] {
        find_key_and_entry();
        found = entry_.has_value();
    });
    bool produced = false;
    std::exception_ptr failure;
    {
        const std::atomic<bool>* saved = cancel::abandon_flag;
        cancel::abandon_flag = &found;
        try {
            produce();
            produced = true;
        } catch (const cancel::abandoned&) {
        } catch (...) {
            failure = std::current_exception();
        }
        cancel::abandon_flag = saved;
    }
    finder.join();
    flush_notes();
    // A signal or the deadline stops the export whatever the cache found; an exporter that
    // failed otherwise is as if it never ran when the cache has the result (as without speculation).
    if (failure && (!entry_ || cancel::pending_signal.load() || cancel::expired())) std::rethrow_exception(failure);
    if (produced && !entry_) return std::nullopt;
    // A found entry decides, whoever finished first: hit or miss depends on the cache's
    // content, never on a race with a quick exporter (a small model's export can end before
    // the key's interpreter probe). The exporter's files are dropped; a hit is byte-identical.
    empty_stage(stage);
    std::optional<cache_manifest> hit = restore_found(stage);
    if (!hit) {
        empty_stage(stage);
        produce();  // the hit could not be restored after all: export as without a cache
    }
    return hit;
}

MODELEXPORT_ENTRY std::map<std::string, std::string> export_cache::store(const fs::path& stage,
                                                                         const std::vector<std::string>& files,
                                                                         const json& table) {
    std::map<std::string, std::string> hashes;
    if (!active() || out_.result != "miss") return hashes;
    if (s_.background) {
        timed("store", false, [&] { defer_store(stage, files, table, remote_usable() && !s_.remote->read_only); });
        return hashes;
    }
    auto staged = std::make_shared<std::vector<local_cache::staged_object>>();
    auto readers = std::make_shared<std::vector<unique_fd>>();
    bool ok = false;
    timed("store", false, [&] {
        *staged = local_.stage_objects(stage, files);
        for (const auto& o : *staged) readers->push_back(o.dir->open(o.tmp));
        ok = true;
    });
    if (!ok) return hashes;
    cache_manifest m;
    m.table = table;
    for (const auto& o : *staged) {
        m.files.push_back(o.file);
        hashes[o.file.path] = o.file.sha256;
    }
    background_.emplace_back([this, staged, m] { timed("commit", false, [&] { keep_entry(*staged, m); }); });
    if (remote_usable() && !s_.remote->read_only)
        background_.emplace_back(
            [this, readers, m] { timed("upload", true, [&] { upload(m, descriptors(*readers)); }); });
    return hashes;
}

MODELEXPORT_ENTRY void export_cache::finish() {
    join();
    flush_notes();
    if (deferred_) launch_deferred();
    // A store prunes; a hit only clears what killed writers left (temporary files, markers).
    if (active() && out_.result != "miss" && !out_.background)
        timed("commit", false, [&] { local_.prune(std::numeric_limits<std::uintmax_t>::max()); });
    flush_notes();
}
#endif

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
        if (opt.opset_given) in.options.push_back({"opset_given", "1"});  // no raise: another result for some models
        in.options.push_back({"reference-check", !opt.reference_check ? std::string("off")
                                                 : opt.atol > 0       ? json(opt.atol).dump()
                                                                      : "default"});
        in.options.push_back({"model", opt.model_factory});
        if (opt.library != "transformers") in.options.push_back({"library", opt.library});
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

/// The part of a staged model that is not a file: its module table, in the cache's form.
template <class Staged>
json cache_table(const Staged& staged) {
    return module_table::of(staged).to_json();
}

/// A staged model rebuilt from a hit; its files are already in the staging directory.
template <class Staged>
Staged staged_from_cache(const cache_manifest& hit, const cache_key_inputs& in, const std::string& key) {
    Staged out;
    // Cannot throw: export_cache::restore read it. A hit carries the reference check recorded with it
    // (the key holds the check's options).
    module_table::from_json(hit.table).fill(out);
    for (const auto& f : hit.files) out.hashes.remember(f.path, f.sha256);
    out.inputs = in.read;
    out.shown =
        (out.models.size() > 1 ? "the ONNX files" : out.models.front()) + " from the export cache (key " + key + ")";
    return out;
}

}  // namespace detail

}  // namespace modelexport
