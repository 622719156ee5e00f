// modelexport/export.hpp — one export: source -> package (docs/design.md §1-4, §9).
//
//   resolve source -> stage model.onnx (htp | prebuilt | command) -> project
//   hierarchy (and embed it) -> copy configuration -> write metadata -> commit
//
// Everything is written into package_writer's staging directory; only commit()
// touches the target, so every failure leaves the previous package (or none).
#pragma once

#include "modelexport/copier.hpp"
#include "modelexport/depfile.hpp"
#include "modelexport/error.hpp"
#include "modelexport/export_cache.hpp"
#include "modelexport/external_data.hpp"
#include "modelexport/hierarchy.hpp"
#include "modelexport/hierarchy_embed.hpp"
#include "modelexport/json_file.hpp"
#include "modelexport/metadata.hpp"
#include "modelexport/onnx_model.hpp"
#include "modelexport/onnx_checks.hpp"
#include "modelexport/onnx_stream.hpp"
#include "modelexport/package_writer.hpp"
#include "modelexport/process.hpp"
#include "modelexport/source.hpp"
#include "modelexport/tasks.hpp"
#include "modelexport/validator.hpp"


#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace modelexport {

enum class strategy { automatic, htp, prebuilt, command };

inline std::string to_string(strategy s) {
    switch (s) {
        case strategy::htp: return "htp";
        case strategy::prebuilt: return "prebuilt";
        case strategy::command: return "command";
        default: return "auto";
    }
}

/// A step of an export starting or ending, for progress displays.
struct step_event {
    std::string step;    ///< resolve, export, project, copy, validate, commit
    std::string detail;  ///< what it does (start) or what it did (end)
    bool finished = false;
    double seconds = 0;  ///< elapsed, when finished
};

struct export_options {
    std::string source;                ///< directory or Hub id
    fs::path output;                   ///< package directory
    std::string task;                  ///< empty: from config.json architectures
    strategy how = strategy::automatic;
    std::string model_factory;         ///< htp without transformers: "file.py:factory" (relative to the source)
    std::string python = "python3";    ///< interpreter for the exporter
    fs::path exporter_script;          ///< tools/htp_exporter.py
    std::string command;               ///< command strategy: shell command with {source} and {output}
    std::string onnx_file;             ///< prebuilt: file in the source (default model.onnx, then onnx/model.onnx)
    int opset = 14;
    bool embed_hierarchy = false;
    bool include_torch_modules = false;
    std::chrono::seconds timeout{1800};
    fs::path hub_cache;                  ///< Hugging Face cache for Hub ids; empty: hub_cache_dir() (the environment)
    fs::path depfile;                    ///< write a Make-style depfile of every input read
    std::vector<std::string> expect;     ///< declared package files; empty: not checked
    std::vector<std::string> keep;       ///< build files that live in the package directory (kept across exports)
    fs::path tool_path;                  ///< the running tool, a dependency of every package
    bool validate = false;               ///< validate the staged package before it replaces the target
    cache_settings cache;                ///< the export cache (§10); off unless the caller enables it (the CLI does)
    std::function<void(const std::string&)> log;                 ///< notes (waiting for a lock, ...)
    std::function<void(const step_event&)> on_step;              ///< step start/end, for progress
    std::function<void(const std::string&, bool)> exporter_line;  ///< exporter's output lines
    /// Side outputs (the CLI's --report) written just before the commit: what it throws fails
    /// the export with no package swapped in (docs/design.md §11, side outputs before the commit).
    std::function<void(const struct export_result&)> before_commit;
};

/// What an export produced, for reports and the CLI.
struct export_result {
    fs::path package;
    json metadata;
    std::vector<fs::path> inputs;                 ///< every file read
    std::vector<std::pair<std::string, double>> step_seconds;  ///< resolve, export, project, copy, commit
    cache_outcome cache;
};

namespace detail {

inline std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

inline std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
    return s;
}

/// Runs a child for the export and turns its failure into export_failed.
inline void run_exporter(const std::string& what, const std::string& program, const std::vector<std::string>& args,
                         const export_options& opt) {
    run_options ro;
    ro.timeout = opt.timeout;
    ro.on_line = opt.exporter_line;
    ro.env = {{"PYTHONDONTWRITEBYTECODE", "1"}, {"PYTHONUNBUFFERED", "1"}};
    run_result r = run_process(program, args, ro);
    if (!r.ok()) {
        std::string tail = r.stderr_tail();
        throw export_failed(what, "exporter failed (" + r.describe(opt.timeout) + ")" + (tail.empty() ? "" : ": " + tail),
                            r.timed_out ? "raise --timeout if the model is large" : "");
    }
}

/// Files of the source directory the exporter may read (top level, regular files).
inline std::vector<fs::path> source_files(const model_source& src) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(src.dir, ec)) {
        if (!fs::is_regular_file(e.path(), ec)) continue;  // subfolders (onnx/) are read only when named
        if (src.file(e.path().filename().string())) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

/// What staging model.onnx produced: the files read and what was learned on the way.
struct staged_model {
    std::vector<fs::path> inputs;                     ///< for the depfile
    std::map<std::string, std::string> known_hashes;  ///< sha256 of staged files a copy already computed
    std::vector<traced_module> modules;               ///< the trace (htp only)
    std::string torch_version;
    std::string onnx_exporter;
    long long parameters = 0;  ///< torch's count (htp only)
    std::string shown;         ///< how errors name the staged model: where it came from, not the staging path
};

/// A file an exporter or command produced (`from`, inside the staging directory)
/// becomes the package file `to`: moved when it is a regular file with one link;
/// copied into a new inode when it is a symlink or shares its inode with another
/// file (the bytes are read through it, never written; the package holds no
/// links); refused when it is, or links to, anything else (FIFO, socket, device,
/// directory) — nothing is ever opened that could block. `who` names the exporter.
inline void adopt_exporter_file(const fs::path& from, const fs::path& to, const std::string& who) {
    const std::string name = from.filename().string();
    struct stat st {};
    if (::lstat(from.c_str(), &st) != 0) throw export_failed(who, "wrote no " + name);
    if (S_ISREG(st.st_mode) && st.st_nlink == 1) {
        if (from != to && ::rename(from.c_str(), to.c_str()) != 0)
            throw io_error(to.string(), std::string("cannot move the exporter's ") + name + ": " + std::strerror(errno));
        return;
    }
    struct stat target {};
    if (S_ISLNK(st.st_mode) && ::stat(from.c_str(), &target) != 0) throw export_failed(who, "wrote " + name + " as a broken link");
    if (!S_ISREG(st.st_mode) && !(S_ISLNK(st.st_mode) && S_ISREG(target.st_mode)))
        throw export_failed(who, "wrote " + name + " as " + file_kind(S_ISLNK(st.st_mode) ? target.st_mode : st.st_mode) +
                                     (S_ISLNK(st.st_mode) ? " (through a link)" : "") + ", not a regular file");
    fs::path copy = to.string() + ".copy";
    copy_file_hashed(from, copy);
    ::unlink(from.c_str());
    if (::rename(copy.c_str(), to.c_str()) != 0)
        throw io_error(to.string(), std::string("cannot move the copied ") + name + ": " + std::strerror(errno));
}

/// Per-tensor external data becomes one model.onnx_data (external_data.hpp); what that read and wrote is recorded.
inline bool gather_into(staged_model& out, const fs::path& model, const external_file_resolver& resolve) {
    gathered_data g = gather_external_data(model, out.shown, resolve);
    out.inputs.insert(out.inputs.end(), g.inputs.begin(), g.inputs.end());
    for (const auto& [name, sha] : g.sha256) out.known_hashes[name] = sha;
    return g.rewritten;
}

/// htp: the torch exporter writes model.onnx and the module table into the staging directory.
inline staged_model stage_htp(const model_source& src, const task_info& task, const fs::path& stage, const export_options& opt) {
    staged_model out;
    out.shown = "model.onnx written by " + opt.exporter_script.string();
    const fs::path model = stage / "model.onnx", table = stage / ".modules.json";
    if (opt.exporter_script.empty() || !fs::is_regular_file(opt.exporter_script))
        throw export_failed(opt.exporter_script.string(), "exporter script not found", "pass --exporter-script or reinstall modelexport");
    std::vector<std::string> args{opt.exporter_script.string(), "--source", src.dir.string(), "--task", std::string(task.name),
                                  "--onnx", model.string(), "--modules", table.string(), "--opset", std::to_string(opt.opset)};
    // Hub snapshots link into ../../blobs: the exporter must accept links inside the repository folder.
    // Only then, so that custom --exporter-script programs keep their argument list for local sources.
    if (src.boundary != src.dir) args.insert(args.end(), {"--source-boundary", src.boundary.string()});
    if (!opt.model_factory.empty()) {
        args.insert(args.end(), {"--model", opt.model_factory});
        std::string file = opt.model_factory.substr(0, opt.model_factory.rfind(':'));
        out.inputs.push_back(fs::path(file).is_absolute() ? fs::path(file) : src.dir / file);
    }
    run_exporter(opt.exporter_script.string(), opt.python, args, opt);
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(model, ec)) || fs::is_directory(fs::symlink_status(model, ec)))
        throw export_failed(opt.exporter_script.string(), "the exporter exited successfully but wrote no ONNX model");
    adopt_exporter_file(model, model, opt.exporter_script.string());
    if (fs::file_size(model) == 0)
        throw export_failed(opt.exporter_script.string(), "the exporter exited successfully but wrote no ONNX model");
    gather_into(out, model, files_inside(stage, out.shown));  // torch writes a file per tensor above 2 GiB
    if (!fs::is_regular_file(table))
        throw export_failed(opt.exporter_script.string(), "the exporter wrote model.onnx but no module table (--modules)");
    try {
        json t = parse_json_text(read_text_file(table, 64u << 20), ".modules.json", {64u << 20, 64});
        out.modules = traced_modules_from_json(t);
        out.torch_version = t.value("torch_version", "");
        out.onnx_exporter = t.value("onnx_exporter", "");
        out.parameters = t.value("parameters", 0LL);
    } catch (const std::exception& e) {  // limits, not JSON, or the wrong shape (nlohmann type errors)
        throw export_failed(opt.exporter_script.string(), std::string("the exporter wrote an unusable module table: ") + e.what());
    }
    fs::remove(table);
    for (const auto& f : source_files(src)) out.inputs.push_back(f);
    for (const auto& f : htp_exporter_files(opt.exporter_script)) out.inputs.push_back(f);
    return out;
}

/// command: the user's command writes into {output}; its model (and model.onnx_data) move into the package.
inline staged_model stage_command(const model_source& src, const fs::path& stage, const export_options& opt) {
    staged_model out;
    out.shown = "model.onnx written by --command";
    if (opt.command.empty()) throw usage_error("--command", "the command strategy needs --command");
    fs::path out_dir = stage / ".command-output";
    fs::create_directory(out_dir);
    std::string cmd = replace_all(opt.command, "{source}", shell_quote(src.dir.string()));
    cmd = replace_all(cmd, "{output}", shell_quote(out_dir.string()));
    if (opt.log) opt.log("running: " + cmd);  // the exact command, after substitution
    run_exporter("--command", "/bin/sh", {"-c", cmd}, opt);
    fs::path produced = out_dir / (opt.onnx_file.empty() ? "model.onnx" : opt.onnx_file);
    // Only a file inside {output} is taken: a directory on the way that is a link could
    // otherwise make the package move a file from anywhere.
    std::error_code ec;
    fs::path real_parent = fs::canonical(produced.parent_path(), ec);
    if (!ec && !model_source::is_within(real_parent, fs::canonical(out_dir)))
        throw export_failed("--command", "the command's " + produced.filename().string() + " is not inside {output} (" +
                                             produced.parent_path().string() + " links to " + real_parent.string() + ")");
    auto st = fs::symlink_status(produced, ec);
    if (ec || !fs::exists(st) || fs::is_directory(st))
        throw export_failed("--command", "the command wrote no " + produced.filename().string() + " into {output}");
    adopt_exporter_file(produced, stage / "model.onnx", "--command");
    bool gathered = gather_into(out, stage / "model.onnx", files_inside(out_dir, out.shown));
    if (!gathered && fs::exists(fs::symlink_status(out_dir / "model.onnx_data", ec)))
        adopt_exporter_file(out_dir / "model.onnx_data", stage / "model.onnx_data", "--command");
    fs::remove_all(out_dir);
    out.inputs = source_files(src);
    return out;
}

/// prebuilt: model.onnx (else onnx/model.onnx, or --onnx-file) and its model.onnx_data, copied from the source.
inline staged_model stage_prebuilt(const model_source& src, const fs::path& stage, const export_options& opt) {
    staged_model out;
    std::vector<std::string> candidates = opt.onnx_file.empty() ? std::vector<std::string>{"model.onnx", "onnx/model.onnx"}
                                                                : std::vector<std::string>{opt.onnx_file};
    std::optional<fs::path> found;
    std::string found_name;
    for (const auto& c : candidates)
        if (!found && (found = src.file(c))) found_name = c;
    if (!found) throw invalid_input(src.dir.string(), "has no " + candidates.front() + " for the prebuilt strategy");
    out.shown = (src.dir / found_name).string();
    out.known_hashes["model.onnx"] = copy_file_hashed(*found, stage / "model.onnx").sha256;
    out.inputs.push_back(*found);
    // Beside the model in the source (not beside a cache blob), under the same containment rule.
    const fs::path beside = fs::path(found_name).parent_path();
    auto find = [&](const std::string& location) { return src.file((beside / location).string()); };
    if (gather_into(out, stage / "model.onnx", files_of_source(find, out.shown))) return out;
    if (auto data = find("model.onnx_data")) {
        out.known_hashes["model.onnx_data"] = copy_file_hashed(*data, stage / "model.onnx_data").sha256;
        out.inputs.push_back(*data);
    }
    return out;
}

/// --strategy auto: prebuilt when the source has an ONNX model and no factory was given, else htp.
inline strategy automatic_strategy(const model_source& src, const export_options& opt) {
    bool has_onnx = src.file("model.onnx") || src.file("onnx/model.onnx");
    return has_onnx && opt.model_factory.empty() ? strategy::prebuilt : strategy::htp;
}

/// Times the export's steps and tells the caller when each starts and ends.
class step_timer {
public:
    step_timer(std::vector<std::pair<std::string, double>>& out, const std::function<void(const step_event&)>& on_step)
        : out_(out), on_step_(on_step) {}
    ~step_timer() {
        if (!current_.empty() && on_step_) on_step_({current_, "failed", true, seconds()});
    }
    void begin(const std::string& step, const std::string& what) {
        check_cancel(step);  // between steps: a signal or the --timeout deadline stops the export here
        current_ = step;
        start_ = std::chrono::steady_clock::now();
        if (on_step_) on_step_({step, what, false, 0.0});
    }
    void end(const std::string& summary = {}) {
        double s = seconds();
        out_.emplace_back(current_, s);
        if (on_step_) on_step_({current_, summary, true, s});
        current_.clear();
    }

private:
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
    std::vector<std::pair<std::string, double>>& out_;
    const std::function<void(const step_event&)>& on_step_;
    std::string current_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace detail

/// The task for a config: `requested` if given, else from `architectures`.
inline const task_info& resolve_task(const std::string& requested, const json& config, const std::string& config_name) {
    if (!requested.empty()) {
        const auto* t = find_task(requested);
        if (!t) throw usage_error("--task", "unknown task '" + requested + "'; known tasks: " + task_names());
        check_task_matches_architecture(*t, config, config_name);
        return *t;
    }
    if (const auto* t = task_for_config(config)) return *t;
    throw invalid_input(config_name, "cannot infer the task from \"architectures\" (" + architectures_hint(config) + ")", "pass --task (one of: " + task_names() + ")");
}

/// Runs one export. Throws modelexport::error subclasses; the target is untouched on failure.
inline export_result export_package(const export_options& opt) {
    auto log = [&](const std::string& m) { if (opt.log) opt.log(m); };
    export_result result;
    detail::step_timer timer(result.step_seconds, opt.on_step);

    cancel::deadline_scope deadline(opt.timeout.count());  // --timeout bounds the whole export
    timer.begin("resolve", "resolving " + opt.source);
    model_source src = resolve_source(opt.source, opt.hub_cache.empty() ? hub_cache_dir() : opt.hub_cache);
    fs::path out_abs = fs::absolute(opt.output).lexically_normal();
    // Neither may hold the other (canonical paths, both directions), before anything is written:
    // an export replaces its output and deletes its leftovers beside it.
    for (const fs::path& s : {src.dir, src.boundary}) {
        if (model_source::is_within(fs::weakly_canonical(out_abs), s))
            throw usage_error(opt.output.string(), "the output directory is inside the model source " + s.string());
        if (package_writer::claims(out_abs, s))
            throw usage_error(opt.output.string(), "the model source " + s.string() + " is inside the output directory (the export would replace it)");
    }
    auto config_path = src.file("config.json");
    if (!config_path)
        throw config_missing(src.spec, "config.json required but the source has none",
                             "Optimum's from_pretrained cannot infer the model without it; add the model's config.json");
    json config = read_json_object(*config_path);
    const task_info& task = resolve_task(opt.task, config, config_path->string());
    timer.end((src.from_cache() ? src.spec + " at commit " + src.commit : src.dir.string()) + ", task " + std::string(task.name));

    std::set<std::string> allowed(opt.keep.begin(), opt.keep.end());
    if (!opt.depfile.empty() && fs::absolute(opt.depfile).lexically_normal().parent_path() == out_abs)
        allowed.insert(opt.depfile.filename().string());
    package_writer writer(opt.output, allowed, log);
    const fs::path stage = writer.staging();

    // 1. model.onnx
    strategy how = opt.how;
    // It names a file inside the source (prebuilt) or inside the command's {output}: never one elsewhere.
    for (const auto& part : fs::path(opt.onnx_file))
        if (part == ".." || fs::path(opt.onnx_file).is_absolute())
            throw usage_error("--onnx-file", "'" + opt.onnx_file + "' must be a relative path without '..'");
    if (how == strategy::automatic) how = detail::automatic_strategy(src, opt);
    // The cache wraps the strategy: lookup before, store after (docs/design.md §10). prebuilt is a copy already.
    bool cacheable = opt.cache.enabled && how != strategy::prebuilt;
    if (cacheable) timer.begin("cache", "looking up the export cache");
    auto key_inputs = detail::cache_key_inputs_for(opt, to_string(how), std::string(task.name), src, detail::source_files(src));
    export_cache cache(opt.cache, cacheable ? std::optional(key_inputs) : std::nullopt, log);
    std::optional<cache_manifest> hit = cache.lookup(stage);
    if (cacheable) timer.end(cache.outcome().result + (cache.active() ? ", key " + cache.outcome().key.substr(0, 16) : ""));
    timer.begin("export", hit ? "restoring the cached export"
                          : how == strategy::htp ? "running the torch exporter (" + opt.python + ")"
                          : how == strategy::command ? "running the export command" : "copying the prebuilt ONNX model");
    detail::staged_model staged = hit                        ? detail::staged_from_cache<detail::staged_model>(*hit, key_inputs, cache.outcome().key)
                                  : how == strategy::htp     ? detail::stage_htp(src, task, stage, opt)
                                  : how == strategy::command ? detail::stage_command(src, stage, opt)
                                                             : detail::stage_prebuilt(src, stage, opt);
    if (!hit) cache.store(stage, detail::produced_files(stage), detail::cache_table(staged));
    result.cache = cache.outcome();
    const fs::path staged_model = stage / "model.onnx";
    std::vector<fs::path> inputs{*config_path};
    inputs.insert(inputs.end(), staged.inputs.begin(), staged.inputs.end());
    std::map<std::string, std::string>& known_hashes = staged.known_hashes;
    std::vector<traced_module>& modules = staged.modules;
    const std::string& model_shown = staged.shown;
    long long parameters = staged.parameters;
    std::string parameters_origin = modules.empty() ? "onnx initializers" : "torch";
    timer.end(std::to_string(fs::file_size(staged_model)) + " bytes of ONNX");

    // 2. hierarchy
    timer.begin("project", "projecting the module hierarchy onto the graph");
    // The graph without the weights: projection reads node names only. Embedding
    // rewrites the file, so only then is the whole model loaded.
    light_model light;
    try {
        light = load_onnx_light(staged_model);
    } catch (const invalid_input& e) {  // named after where the model came from, not the staging copy
        throw invalid_input(model_shown, std::string(e.what()).substr(e.file().size() + 2));
    }
    const onnx::GraphProto& graph = light.model.graph();
    signature sig = graph_signature(graph);
    // Bad ONNX (external data leaving the package, cycles, undefined inputs) is refused
    // here with the checks validate runs.
    onnx_verdict verdict = check_onnx(light, stage);
    if (!verdict.external_data.empty()) throw invalid_input(model_shown, verdict.external_data);
    if (!verdict.checker->empty()) throw invalid_input(model_shown, "fails the ONNX checker: " + *verdict.checker);
    std::string root_class = model_class(config);
    if (root_class.empty()) root_class = "Model";
    projection proj = project_hierarchy(node_views(graph), modules, root_class, opt.include_torch_modules);
    if (proj.coverage() < 100.0) throw export_failed(staged_model.string(), "hierarchy projection left nodes untagged");
    if (parameters_origin != "torch")
        for (const auto& init : graph.initializer()) {
            long long n = 1;
            for (auto d : init.dims())
                if (__builtin_mul_overflow(n, d, &n)) n = 0;  // hostile dims count nothing rather than overflow
            if (__builtin_add_overflow(parameters, n, &parameters)) parameters = 0;
        }
    light.model.Clear();
    if (opt.embed_hierarchy) {
        onnx::ModelProto model = load_onnx(staged_model, model_shown);
        embed_hierarchy_tags(model, proj.tags);
        known_hashes["model.onnx"] = save_onnx(model, staged_model).sha256;
    }
    timer.end(std::to_string(proj.tags.size()) + " nodes onto " + std::to_string(proj.module_tags.size()) + " modules, coverage " +
              std::to_string(static_cast<int>(proj.coverage())) + "%");

    // 3. configuration
    timer.begin("copy", "hashing the model and copying configuration files");
    configuration_copier<> copier(src, stage);
    std::vector<copied_file> files;
    auto model_entry = [&](const std::string& name) {
        fs::path p = stage / name;
        auto known = known_hashes.find(name);
        return copied_file{name, file_role::model, fs::file_size(p), known != known_hashes.end() ? known->second : hash_file(p), p};
    };
    files.push_back(model_entry("model.onnx"));
    if (fs::exists(stage / "model.onnx_data")) files.push_back(model_entry("model.onnx_data"));
    for (auto& f : copier.copy_all()) {
        if (f.name != "config.json") inputs.push_back(f.source);
        files.push_back(std::move(f));
    }
    if (!src.ref.empty()) inputs.push_back(src.ref);  // not for a commit given as such: a missing input is always dirty
    // The directory itself: a file added to or removed from the source changes its
    // mtime, so the build re-exports (and fails clearly if the declared outputs differ).
    inputs.push_back(src.dir);
    if (!opt.tool_path.empty()) inputs.push_back(opt.tool_path);
    timer.end(std::to_string(files.size()) + " files");

    // 4. metadata
    metadata_inputs mi;
    mi.strategy = to_string(how);
    mi.time = choose_export_time();
    mi.embed_hierarchy = opt.embed_hierarchy;
    mi.source = &src;
    mi.config = &config;
    mi.task = std::string(task.name);
    mi.optimum_class = std::string(task.optimum_class);
    mi.parameters = parameters;
    mi.parameters_origin = parameters_origin;
    mi.files = files;
    mi.sig = &sig;
    mi.modules = &modules;
    mi.proj = &proj;
    mi.torch_version = staged.torch_version;
    mi.onnx_exporter = staged.onnx_exporter;
    if (modules.empty()) {
        // No trace: the levels are the scope names; list them as modules so the metadata has one shape.
        // Their classes are unknown (""), so they add nothing to statistics.module_types.
        for (const auto& [path, tag] : proj.module_tags) modules.push_back({path, path.empty() ? root_class : "", false, std::nullopt});
    }
    result.metadata = build_metadata(mi);
    std::map<std::string, std::string> staged_sha256{{"export_metadata.json", write_file(stage / "export_metadata.json", to_canonical_text(result.metadata)).sha256}};
    for (const auto& f : files) staged_sha256[f.name] = f.sha256;

    if (!opt.expect.empty()) {
        std::set<std::string> declared(opt.expect.begin(), opt.expect.end()), actual;
        for (const auto& e : fs::directory_iterator(stage)) actual.insert(e.path().filename().string());
        std::vector<std::string> missing, extra;  // declared but not produced; produced but not declared
        for (const auto& d : declared)
            if (!actual.count(d)) missing.push_back(d);
        for (const auto& a : actual)
            if (!declared.count(a)) extra.push_back(a);
        // The build decided the list when it was configured (from the source) or took the user's
        // explicit 'files'/FILES list: the fix is a reconfigure after a source change, else that list.
        std::string edit = (missing.empty() ? "" : "remove " + detail::join(missing)) + (missing.empty() || extra.empty() ? "" : " and ") +
                           (extra.empty() ? "" : "add " + detail::join(extra));
        if (!missing.empty() || !extra.empty())
            throw usage_error(opt.output.string(),
                              "the package does not match the declared outputs (" +
                                  (missing.empty() ? "" : "declared but not produced: " + detail::join(missing)) +
                                  (missing.empty() || extra.empty() ? "" : "; ") +
                                  (extra.empty() ? "" : "produced but not declared: " + detail::join(extra)) + ")",
                              "if the source changed since the build was configured, reconfigure (meson setup --reconfigure, or "
                              "rerun cmake); if the model's 'files' list is explicit, " + edit + " there");
    }
    if (opt.validate) {
        timer.begin("validate", "validating the staged package");
        validation_report report = validate_package(stage, {std::string(task.name)});
        for (const auto& c : report.checks)
            if (c.status == check_status::fail && c.level == severity::error)
                throw validation_failed(opt.output.string(), "the exported package fails " + c.id + ": " + c.message);
        timer.end("passed");
    }
    std::sort(inputs.begin(), inputs.end());
    inputs.erase(std::unique(inputs.begin(), inputs.end()), inputs.end());
    // Side outputs are written before the commit, so a failure to write them fails the export
    // with the previous package (or none) still in place. A depfile inside the package directory
    // is staged with the package and arrives with the swap.
    if (!opt.depfile.empty()) {
        std::string depfile = depfile_text((opt.output / "model.onnx").string(), inputs);
        bool inside = fs::absolute(opt.depfile).lexically_normal().parent_path() == out_abs;
        write_file(inside ? stage / opt.depfile.filename() : opt.depfile, depfile);
    }
    result.package = writer.target();
    result.inputs = inputs;
    if (opt.before_commit) opt.before_commit(result);
    timer.begin("commit", "moving the package into place");
    writer.commit(staged_sha256);
    timer.end(writer.target().string());
    return result;
}

/// The export cache key of `opt` with its record (`modelexport cache key`, to explain a miss);
/// nullopt for prebuilt, which is not cached. Throws cache_key_error when it cannot be computed.
inline std::optional<key_record> export_cache_key(const export_options& opt) {
    model_source src = resolve_source(opt.source);
    auto config_path = src.file("config.json");
    if (!config_path) throw config_missing(src.spec, "config.json required but the source has none");
    const task_info& task = resolve_task(opt.task, read_json_object(*config_path), config_path->string());
    strategy how = opt.how == strategy::automatic ? detail::automatic_strategy(src, opt) : opt.how;
    if (how == strategy::prebuilt) return std::nullopt;
    auto in = detail::cache_key_inputs_for(opt, to_string(how), std::string(task.name), src, detail::source_files(src));
    return make_cache_key(in, local_cache(opt.cache.dir).probes());
}

}  // namespace modelexport
