// modelexport/export.hpp — one export as a pipeline of named steps (docs/design.md §1-4, §9):
//
//   resolve_model -> produce_onnx (export/strategies.hpp) -> project_model (onnx/project.hpp)
//     -> place_models -> assemble_files -> write_metadata -> validate_staged -> commit
//
// Each step takes what it needs and returns what it made, so it can be tested
// alone and a new step (an export cache between resolve and produce, §10) slots
// in between two others. export_package() is the orchestrator.
//
// Everything is written into package_writer's staging directory; only the
// commit touches the target, so every failure leaves the previous package (or
// none). The build system's additions (--expect, --depfile, --keep, --report)
// plug in through export_hooks; export/build_edge.hpp has them.
#pragma once

#include "modelexport/cache/export_cache.hpp"
#include "modelexport/detail/json_file.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/error.hpp"
#include "modelexport/export/source.hpp"
#include "modelexport/export/step_event.hpp"
#include "modelexport/export/strategies.hpp"
#include "modelexport/export/variants.hpp"
#include "modelexport/export_options.hpp"
#include "modelexport/onnx/external_data.hpp"
#include "modelexport/onnx/project.hpp"
#include "modelexport/package/copier.hpp"
#include "modelexport/package/layout.hpp"
#include "modelexport/package/metadata.hpp"
#include "modelexport/package/writer.hpp"
#include "modelexport/plan.hpp"
#include "modelexport/tasks.hpp"
#include "modelexport/validator.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace modelexport {

/// What an export produced, for reports and the CLI.
struct export_result {
    fs::path package;                        ///< the target directory
    json metadata;                           ///< export_metadata.json's document
    std::vector<fs::path> inputs;            ///< every file read, sorted, for the depfile
    step_times step_seconds;                 ///< resolve, export, project, copy, [validate,] commit
    json exporter_seconds = json::object();  ///< the exporter's phases inside "export" (htp; empty on a cache hit)
    cache_outcome cache;                     ///< what the export cache did (§10)
};

/// Where a caller (the build edge) joins the pipeline.
struct export_hooks {
    std::set<std::string> build_files;  ///< names the build keeps in the package directory (carried across the swap)
    std::function<void(const fs::path& staging)> check_staged;  ///< after metadata, before validation (--expect)
    std::function<void(const fs::path& staging, const export_result&)>
        before_commit;  ///< side outputs (--depfile, --report)
};

/// The "resolve" step's result: the source, its config and the task.
struct resolved_model {
    model_source source;
    fs::path config_path;
    json config;
    const task_info* task = nullptr;
    std::string root_class;  ///< the model class, "Model" when config.json names none
};

/// resolve: the source (directory or Hub id), its config.json and the task. Neither the output
/// nor the source may hold the other (canonical paths, both directions), before anything is
/// written: an export replaces its output and deletes its leftovers beside it.
inline resolved_model resolve_model(const std::string& spec, const std::string& requested_task, const fs::path& output,
                                    const fs::path& hub_cache = {}) {
    resolved_model r{resolve_source(spec, hub_cache.empty() ? hub_cache_dir() : hub_cache), {}, {}, nullptr, {}};
    fs::path out_abs = fs::absolute(output).lexically_normal();
    for (const fs::path& s : {r.source.dir, r.source.boundary}) {
        if (model_source::is_within(fs::weakly_canonical(out_abs), s))
            throw usage_error(output.string(), "the output directory is inside the model source " + s.string());
        if (package_writer::claims(out_abs, s))
            throw usage_error(output.string(), "the model source " + s.string() +
                                                   " is inside the output directory (the export would replace it)");
    }
    std::tie(r.config_path, r.config) = read_source_config(r.source);
    r.task = &resolve_task(requested_task, r.config, r.config_path.string());
    r.root_class = model_class(r.config);
    if (r.root_class.empty()) r.root_class = "Model";
    return r;
}

/// The package's files with sizes and hashes, and every source file read.
struct assembled_files {
    std::vector<copied_file> files;
    std::vector<fs::path> inputs;  ///< sorted, unique
};

/// assemble: hashes the staged model and variant files (reusing hashes already known) and
/// copies config, tokenizer, processor and generation files byte for byte. Collects the
/// depfile's inputs: everything read, the source directory itself (a file added to or
/// removed from it changes its mtime) and `tool`.
inline assembled_files assemble_files(const resolved_model& m, const produced_onnx& onnx, const fs::path& stage,
                                      const fs::path& tool, const std::vector<std::string>& variant_files = {}) {
    assembled_files out;
    out.inputs = {m.config_path};
    out.inputs.insert(out.inputs.end(), onnx.inputs.begin(), onnx.inputs.end());
    auto staged = [&](const std::string& name, file_role role) {
        out.files.push_back({name, role, fs::file_size(stage / name), onnx.hashes.of(stage, name), stage / name});
    };
    for (const auto* names : {&onnx.models, &onnx.data_files})
        for (const auto& name : *names) staged(name, file_role::model);
    for (const auto& name : variant_files) staged(name, file_role::variant);
    for (auto& f : configuration_copier<>(m.source, stage).copy_all()) {
        if (f.name != "config.json") out.inputs.push_back(f.source);
        out.files.push_back(std::move(f));
    }
    if (!m.source.ref.empty())
        out.inputs.push_back(m.source.ref);  // not for a commit given as such: a missing input is always dirty
    out.inputs.push_back(m.source.dir);
    if (!tool.empty()) out.inputs.push_back(tool);
    std::sort(out.inputs.begin(), out.inputs.end());
    out.inputs.erase(std::unique(out.inputs.begin(), out.inputs.end()), out.inputs.end());
    return out;
}

/// The metadata's `modules`: the trace, or without one the scope levels with unknown ("")
/// classes, so the document has one shape for every strategy and they add nothing to module_types.
inline std::vector<traced_module> metadata_modules(const std::vector<traced_module>& trace, const projection& proj,
                                                   const std::string& root_class) {
    if (!trace.empty()) return trace;
    std::vector<traced_module> levels;
    for (const auto& [path, tag] : proj.module_tags)
        levels.push_back({path, path.empty() ? root_class : "", false, std::nullopt});
    return levels;
}

/// project: every staged ONNX file with its own trace (each must reach 100% coverage); an
/// --embed-hierarchy rewrite's new hash replaces the known one.
inline std::vector<projected_model> project_models(const resolved_model& m, produced_onnx& onnx, const fs::path& stage,
                                                   const export_options& opt) {
    std::vector<projected_model> out;
    for (std::size_t i = 0; i < onnx.models.size(); ++i) {
        const std::vector<traced_module>& trace = onnx.model_modules.empty() ? onnx.modules : onnx.model_modules[i];
        std::string shown = onnx.models.size() > 1 ? onnx.models[i] + " (" + onnx.shown + ")" : onnx.shown;
        out.push_back(project_model({stage / onnx.models[i], shown, stage, &trace, m.root_class,
                                     opt.include_torch_modules, opt.embed_hierarchy}));
        if (out.back().rewritten_sha256) onnx.hashes.remember(onnx.models[i], *out.back().rewritten_sha256);
    }
    return out;
}

/// place: the layout's paths for the staged ONNX files. In `hub` they and their external data
/// move under onnx/ (a rename inside the staging directory: bytes, known hashes and the relative
/// external-data locations stay valid, since model and data move together); from here on
/// `onnx.models`/`data_files` are package-relative paths. Strategies, the export cache and
/// projection never see the layout, which is why it is not part of the cache key (§10).
inline void place_models(produced_onnx& onnx, const fs::path& stage, package_layout layout,
                         std::vector<std::string>& variant_files) {
    if (layout == package_layout::flat) return;
    const fs::path sub = stage / std::string(hub_onnx_dir);
    fs::create_directory(sub);
    fs::permissions(sub, fs::perms(0755));
    for (auto* names : {&onnx.models, &onnx.data_files, &variant_files})
        for (auto& name : *names) {
            std::string to = layout_path(layout, name);
            onnx.hashes.rename(stage, name, to);
            name = to;
        }
}

/// metadata: builds export_metadata.json from the steps' results and writes it into `stage`.
/// `all` (several ONNX files) adds a section per file; `p` is the primary's. Returns the
/// document and the sha256 of every staged file (for the commit).
inline std::pair<json, std::map<std::string, std::string>> write_metadata(
    const resolved_model& m, strategy how, const produced_onnx& onnx, const projected_model& p,
    const assembled_files& a, const export_options& opt, const fs::path& stage,
    const std::vector<projected_model>& all = {}, const json& variants = json()) {
    std::vector<traced_module> modules = metadata_modules(onnx.modules, p.proj, m.root_class);
    std::vector<std::vector<traced_module>> file_modules;
    for (std::size_t i = 0; all.size() > 1 && i < all.size(); ++i)
        file_modules.push_back(metadata_modules(onnx.model_modules.at(i), all[i].proj, m.root_class));
    bool traced = !onnx.modules.empty();
    metadata_inputs mi;
    mi.strategy = to_string(how);
    mi.time = choose_export_time();
    mi.embed_hierarchy = opt.embed_hierarchy;
    mi.source = &m.source;
    mi.config = &m.config;
    mi.task = std::string(m.task->name);
    mi.optimum_class = std::string(m.task->optimum_class);
    mi.parameters = traced ? onnx.parameters : p.initializer_parameters;
    mi.parameters_origin = traced ? "torch" : "onnx initializers";
    mi.files = a.files;
    mi.sig = &p.sig;
    mi.modules = &modules;
    mi.proj = &p.proj;
    mi.torch_version = onnx.torch_version;
    mi.onnx_exporter = onnx.onnx_exporter;
    mi.signature_source = onnx.signature_source;
    mi.pipeline = onnx.pipeline;
    mi.reference_check = onnx.reference.to_json();
    for (std::size_t i = 0; i < file_modules.size(); ++i)
        mi.models.push_back(
            {fs::path(onnx.models[i]).filename().string(), &all[i].sig, &file_modules[i], &all[i].proj});
    mi.layout = to_string(opt.layout);
    mi.onnx_files = onnx.models;
    json doc = build_metadata(mi);
    if (!variants.is_null()) doc["variants"] = variants;
    std::map<std::string, std::string> sha256{
        {"export_metadata.json", write_file(stage / "export_metadata.json", to_canonical_text(doc)).sha256}};
    for (const auto& f : a.files) sha256[f.name] = f.sha256;
    return {std::move(doc), std::move(sha256)};
}

/// validate: the staged package as `modelexport validate` sees it; an error check fails the export.
inline void validate_staged(const fs::path& stage, const task_info& task, const fs::path& output) {
    validation_report report = validate_package(stage, {std::string(task.name)});
    for (const auto& c : report.checks)
        if (c.status == check_status::fail && c.level == severity::error)
            throw validation_failed(output.string(), "the exported package fails " + c.id + ": " + c.message);
}

namespace detail {
/// The produce step's result rebuilt from a cache hit; its files are already in the staging directory.
inline produced_onnx onnx_from_cache(const cache_manifest& hit, const cache_key_inputs& in, const std::string& key) {
    produced_onnx out = staged_from_cache<produced_onnx>(hit, in, key);  // models: model.onnx, or the table's files
    for (const auto& f : hit.files)
        if (f.path == external_data_name) out.data_files = {external_data_name};
    return out;
}

/// The produce step's result after a miss: the strategy's, with the hashes the cache's store
/// computed while copying its files (none when the store runs in the background).
inline produced_onnx onnx_stored(produced_onnx made, export_cache& cache, const fs::path& stage) {
    made.hashes.remember(cache.store(stage, produced_files(stage), cache_table(made)));
    return made;
}
}  // namespace detail

/// Runs one export. Throws modelexport::error subclasses; the target is untouched on failure.
MODELEXPORT_ENTRY export_result export_package(const export_options& opt, const export_hooks& hooks = {});

/// The export cache key of `opt` with its record (`modelexport cache key`, to explain a miss);
/// nullopt for prebuilt, which is not cached. Throws cache_key_error when it cannot be computed.
MODELEXPORT_ENTRY std::optional<key_record> export_cache_key(const export_options& opt);

#if MODELEXPORT_DEFINES(EXPORT)
MODELEXPORT_ENTRY export_result export_package(const export_options& opt, const export_hooks& hooks) {
    export_result result;
    step_timer timer(result.step_seconds, opt.on_step);
    cancel::deadline_scope deadline(opt.timeout.count());  // --timeout bounds the whole export
    if (opt.output.empty()) throw usage_error("OUTDIR", "is empty; name the package directory to write");
    check_onnx_file_option(opt.onnx_file);
    timer.begin("resolve", "resolving " + opt.source);
    resolved_model m = resolve_model(opt.source, opt.task, opt.output, opt.hub_cache);
    timer.end((m.source.from_cache() ? m.source.spec + " at commit " + m.source.commit : m.source.dir.string()) +
              ", task " + std::string(m.task->name));

    package_writer writer(opt.output, hooks.build_files, opt.log);
    const fs::path stage = writer.staging();
    strategy how = choose_strategy(opt.how, m.source, opt.model_factory);
    if (opt.library != "transformers" && how != strategy::htp)
        throw usage_error("--library", opt.library + " is how the htp exporter loads the model; the " + to_string(how) +
                                           " strategy exports none (it " +
                                           (how == strategy::prebuilt ? "copies an ONNX file" : "runs a command") +
                                           ")");
    // The cache wraps the produce step: lookup before, store after (docs/design.md §10). prebuilt is a copy already.
    auto log = [&](const std::string& note) {
        if (opt.log) opt.log(note);
    };
    // A multi-file (encoder-decoder) export is cached as one entry: every file, a module table per file.
    bool cacheable = opt.cache.enabled && how != strategy::prebuilt;
    if (cacheable) timer.begin("cache", "looking up the export cache");
    auto key_inputs = detail::cache_key_inputs_for(opt, to_string(how), std::string(m.task->name), m.source,
                                                   detail::source_files(m.source));
    export_cache cache(opt.cache, cacheable ? std::optional(key_inputs) : std::nullopt, log);
    auto cache_summary = [&] {
        const cache_outcome& o = cache.outcome();
        return o.speculative ? std::string("key computed alongside the exporter")
                             : o.result + (cache.active() ? ", key " + o.key.substr(0, 16) : "");
    };
    // The cache step ends and the export step begins once, where exporting starts: in the strategy's
    // callback on a miss (which runs twice when a hit cannot be restored after all), after the
    // lookup on a hit. htp may start while the key is computed (export_cache::lookup_or_produce):
    // a hit stops it, and the hit's files replace whatever it made.
    std::optional<produced_onnx> made;
    std::optional<cache_manifest> hit = cache.lookup_or_produce(stage, how == strategy::htp, [&] {
        timer.enter("export", describe(how, opt), cache_summary);
        made = produce_onnx(how, m.source, *m.task, stage, opt);
    });
    timer.enter("export", "restoring the cached export", cache_summary);
    produced_onnx onnx = hit ? detail::onnx_from_cache(*hit, key_inputs, cache.outcome().key)
                             : detail::onnx_stored(std::move(*made), cache, stage);
    result.exporter_seconds = onnx.exporter_seconds;
    timer.end(std::to_string(fs::file_size(stage / onnx.models.front())) + " bytes of ONNX");

    timer.begin("project", "projecting the module hierarchy onto the graph");
    std::vector<projected_model> projected = project_models(m, onnx, stage, opt);
    const projected_model& p = projected.front();
    std::size_t nodes = 0;
    for (const auto& each : projected) nodes += each.proj.tags.size();
    timer.end(std::to_string(nodes) + " nodes of " + std::to_string(projected.size()) + " ONNX file(s) onto " +
              std::to_string(p.proj.module_tags.size()) + " modules, coverage 100%");

    made_variants variants;
    if (!opt.variants.empty()) {
        timer.begin("variants", "making the variants " + joined(opt.variants) + " and measuring them against fp32");
        variants = make_variants(stage, onnx.models, m.source, std::string(m.task->name), opt);
        timer.end(std::to_string(variants.files.size()) + " files");
    }
    place_models(onnx, stage, opt.layout, variants.files);
    timer.begin("copy", "hashing the model and copying configuration files");
    assembled_files files = assemble_files(m, onnx, stage, opt.tool_path, variants.files);
    timer.end(std::to_string(files.files.size()) + " files");

    json variant_record = opt.variants.empty() ? json() : variants_metadata(variants.record, [&](const std::string& f) {
        return layout_path(opt.layout, f);
    });
    auto [metadata, staged_sha256] = write_metadata(m, how, onnx, p, files, opt, stage, projected, variant_record);
    if (hooks.check_staged) hooks.check_staged(stage);
    if (opt.validate) {
        timer.begin("validate", "validating the staged package");
        validate_staged(stage, *m.task, opt.output);
        timer.end("passed");
    }
    result.package = writer.target();
    result.metadata = std::move(metadata);
    result.inputs = std::move(files.inputs);
    result.cache = cache.snapshot();  // the store may still be making its copies durable and uploading
    if (hooks.before_commit) hooks.before_commit(stage, result);

    timer.begin("commit", "moving the package into place");
    writer.commit(staged_sha256);
    timer.end(writer.target().string());
    cache.finish();
    result.cache = cache.outcome();
    return result;
}

MODELEXPORT_ENTRY std::optional<key_record> export_cache_key(const export_options& opt) {
    model_source src = resolve_source(opt.source, opt.hub_cache.empty() ? hub_cache_dir() : opt.hub_cache);
    auto [config_path, config] = read_source_config(src);
    const task_info& task = resolve_task(opt.task, config, config_path.string());
    strategy how = choose_strategy(opt.how, src, opt.model_factory);
    if (how == strategy::prebuilt) return std::nullopt;
    auto in = detail::cache_key_inputs_for(opt, to_string(how), std::string(task.name), src, detail::source_files(src));
    held_dir probes;
    try {
        probes = local_cache(opt.cache.dir).probes();
    } catch (const cache_error&) {  // a cache directory refused: the key is computed without remembered hashes
    }
    return make_cache_key(in, probes.path);
}
#endif

}  // namespace modelexport
