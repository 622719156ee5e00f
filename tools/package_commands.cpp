// The subcommands that read a package: validate, inspect, verify, bindings, embed, pack, unpack
// (tools/commands.hpp). Apart from the command line's file (tools/modelexport.cpp) so that it
// parses none of the pipeline's headers, and from the export commands (tools/export_commands.cpp)
// so that both compile in parallel.
#include "commands.hpp"

#include "modelexport/export/reference_source.hpp"
#include "modelexport/package/bindings.hpp"
#include "modelexport/package/contents.hpp"
#include "modelexport/package/inspect.hpp"
#include "modelexport/package/pack.hpp"
#include "modelexport/package/reader.hpp"
#include "modelexport/package/verify.hpp"
#include "modelexport/validate/runtime.hpp"
#include "modelexport/validator.hpp"

#include <iostream>

namespace tool {

namespace me = modelexport;

namespace {

/// validate --reference: the export's reference check again, on the package's ONNX file(s).
me::check_result reference_check_result(const fs::path& dir, const me::validation_report& report,
                                        const std::string& source, const me::reference_runner& runner) {
    me::check_result c{"reference", me::severity::error, me::check_status::fail, {}, me::json::object()};
    const me::task_info* task = report.row ? report.row : me::find_task(report.task);
    if (!task) {
        c.message = dir.string() + ": the package's task is unknown: no torch model to compare with";
        return c;
    }
    // The source as export takes it: config.json a regular file inside it (a FIFO would block the exporter).
    const me::model_source src = me::resolve_source(source);
    me::read_source_config(src);
    me::reference_outcome o = me::compare_with_source(dir / report.model, *task, src, runner);
    if (!o.mismatch.empty()) {
        c.message = (dir / report.model).string() + ": " + o.mismatch;
    } else if (o.record.status != "passed") {
        c.message = o.record.reason + "; this says nothing about the package";
    } else {
        const double worst = o.record.detail.value("max_abs_diff", 0.0);
        c.status = me::check_status::pass;
        c.metrics = {{"max_abs_diff", worst}, {"atol", o.record.detail.value("atol", 0.0)}};
        c.message = "outputs within the tolerance of " + source + "'s torch model (max abs diff " +
                    me::json(worst).dump() + ")";
    }
    return c;
}

/// A file bindings or embed generates may live beside the package it describes (Meson keeps the bindings
/// header in the package's build directory) but is never one of the package's own files.
void check_not_a_package_file(const fs::path& dir, const fs::path& output) {
    const fs::path where = fs::weakly_canonical(fs::absolute(output));
    if (me::path_within(where, fs::weakly_canonical(fs::absolute(dir))) && me::role_of(where.filename().string()))
        throw me::usage_error(output.string(),
                              "is a file of the package " + dir.string() + ", which it is generated from",
                              "write it beside the package under another name, or elsewhere");
}

}  // namespace

int run_validate(const fs::path& dir, const std::string& task, bool strict, const std::string& runtime_name,
                 const me::runtime_config& rcfg, const output_mode& mode, const fs::path& report_path,
                 const std::string& reference, const me::export_options& exporter) {
    const me::reference_runner runner{exporter.python, exporter.exporter_script};
    auto kind = me::parse_runtime(runtime_name);
    if (!kind)
        throw me::usage_error(
            "--runtime", "unknown runtime '" + runtime_name + "' (auto, none, onnxruntime, transformers-js, optimum)");
    if (!fs::is_directory(dir)) throw me::validation_failed(dir.string(), "not a package directory");
    me::runtime_check runtime(*kind, rcfg);
    auto report = me::validate_package(dir, {task}, runtime);
    if (*kind == me::runtime_kind::automatic && runtime.ran() != me::runtime_kind::none && !mode.quiet && !mode.json)
        std::cerr << "modelexport: runtime check: " << me::to_string(runtime.ran()) << " (auto)\n";
    if (!reference.empty() && report.ok(false))
        report.checks.push_back(reference_check_result(dir, report, reference, runner));
    bool ok = report.ok(strict);
    // A named runtime that cannot start leaves the package's verdict open: neither valid nor INVALID.
    const me::check_result* unavailable = ok ? report.unavailable() : nullptr;
    // The same document as --json, for monitoring across a build (the runtime check's latency_ms, peak_rss_mb).
    if (!report_path.empty()) me::write_file(report_path, me::to_canonical_text(me::to_json(report, strict)));
    if (mode.json) {
        std::cout << me::to_canonical_text(me::to_json(report, strict));
    } else {
        for (const auto& c : report.checks) {
            if (mode.quiet && c.status != me::check_status::fail) continue;
            std::cout << (c.status == me::check_status::pass          ? "ok    "
                          : c.status == me::check_status::skip        ? "skip  "
                          : c.status == me::check_status::unavailable ? "n/a   "
                          : c.level == me::severity::error            ? "FAIL  "
                                                                      : "WARN  ")
                      << c.id << ": " << me::printable(c.message)
                      << "\n";  // names from the package, quoted as in error lines
        }
        if (!mode.quiet)
            std::cout << me::printable(dir.string()) << ": "
                      << (unavailable ? "not checked in its runtime"
                          : ok        ? "valid"
                                      : "INVALID")
                      << " for " << (report.task.empty() ? "?" : report.task)
                      << (report.optimum_class.empty() ? "" : " (" + report.optimum_class + ")")
                      << (strict ? " [strict]" : "") << "\n";
    }
    if (unavailable)
        throw me::runtime_unavailable(
            "", unavailable->message,
            "install it, or validate with --runtime auto to skip a runtime that cannot start");
    return ok ? 0 : static_cast<int>(me::exit_code::validation_failed);
}

int run_inspect(const fs::path& path, const std::string& format, const output_mode& mode) {
    // A package's ONNX files are all there, or none is described (config.json and metadata are optional: any ONNX
    // package).
    if (fs::is_directory(path)) me::open_complete_package(path, me::package_need::models);
    if (std::string several = fs::is_directory(path) ? me::multi_file_models(path) : ""; !several.empty()) {
        if (mode.json || format != "text")
            throw me::usage_error(path.string(), "holds several ONNX models (" + several +
                                                     "); inspect one of them for --format " +
                                                     (mode.json ? std::string("json") : format));
        for (const auto& name : me::multi_file_model_names(path))
            run_inspect(me::package_file_path(path, name), format, mode);  // a tree per file
        return 0;
    }
    fs::path dir = fs::is_directory(path) ? path : me::package_dir_of(path);
    me::open_package(dir);  // package files are read only as regular files inside it, never through a link
    fs::path model_path = fs::is_directory(path) ? me::package_file_path(path, "model.onnx") : path;
    auto model = me::load_onnx_light(model_path).model;  // the graph; weights are not needed to describe it
    auto sig = me::graph_signature(model.graph());
    me::json meta;
    if (fs::is_regular_file(dir / "export_metadata.json"))
        meta = me::read_export_metadata(dir / "export_metadata.json");
    meta = me::metadata_for_file(meta, model_path.filename().string());
    const me::shown_hierarchy shown = me::nodes_per_tag(model, meta);
    const auto& per_tag = shown.nodes_per_tag;
    if (shown.cut)
        std::cerr << "inspect: " << shown.cut << " hierarchy tag(s) shown cut to " << me::shown_depth
                  << " levels of at most " << me::shown_name_bytes << "-byte names\n";
    if (format == "dot") {
        std::cout << me::hierarchy_dot(per_tag, model_path.string());
        return 0;
    }
    if (format == "graphml") {
        std::cout << me::hierarchy_graphml(per_tag);
        return 0;
    }
    if (mode.json || format == "json") {
        me::json out{{"model", model_path.string()},
                     {"signature", me::to_json(sig)},
                     {"nodes", model.graph().node_size()},
                     {"hierarchy", me::subtree_counts(per_tag)}};
        if (!meta.is_null())
            out.update({{"task", meta["model"]["task"]},
                        {"optimum_class", meta["model"]["optimum_class"]},
                        {"files", meta["files"]}});
        std::cout << me::to_canonical_text(out);
        return 0;
    }
    // Names come from the package (directory, metadata): no terminal control reaches the screen.
    std::cout << "model: " << me::printable(model_path.string()) << " (" << model.graph().node_size()
              << " nodes, opset " << (model.opset_import_size() ? model.opset_import(0).version() : 0) << ")\n";
    if (!meta.is_null())
        std::cout << "task: " << me::printable(meta["model"].value("task", "?")) << " ("
                  << me::printable(meta["model"].value("optimum_class", "?")) << ")\n";
    auto print_tensors = [](const char* what, const std::vector<me::tensor_info>& v) {
        std::cout << what << ":\n";
        for (const auto& t : v)
            std::cout << "  " << me::printable(t.name) << "  " << t.elem_type << " " << me::to_json(t)["shape"].dump()
                      << "\n";
    };
    print_tensors("inputs", sig.inputs);
    print_tensors("outputs", sig.outputs);
    if (!meta.is_null() && meta.contains("files")) {
        std::cout << "files:\n";
        for (const auto& [name, f] : meta["files"].items())
            std::cout << "  " << me::printable(name) << "  " << f["size"] << " bytes  sha256 "
                      << me::printable(f["sha256"].get<std::string>()) << "  ("
                      << me::printable(f["role"].get<std::string>()) << ")\n";
    }
    std::cout << "hierarchy:\n";
    me::print_tree(std::cout, per_tag);
    return 0;
}

int run_verify(const fs::path& dir, const std::vector<std::string>& ignore, const output_mode& mode) {
    auto problems = me::verify_package(dir, ignore);
    if (mode.json) {
        me::json out = me::json::array();
        for (const auto& p : problems) out.push_back({{"file", p.file}, {"problem", p.kind}, {"detail", p.detail}});
        std::cout << me::to_canonical_text(
            me::json{{"package", dir.string()}, {"ok", problems.empty()}, {"problems", out}});
    } else {
        for (const auto& p : problems)
            std::cout << me::printable((dir / p.file).string()) << ": " << p.kind << " (" << me::printable(p.detail)
                      << ")\n";
        if (problems.empty() && !mode.quiet) std::cout << dir.string() << ": all files match export_metadata.json\n";
    }
    return problems.empty() ? 0 : static_cast<int>(me::exit_code::package_modified);
}

std::string namespace_for(const fs::path& dir) { return me::namespace_for(dir); }

int run_bindings(const fs::path& dir, const std::string& ns, const fs::path& header, const fs::path& files_header) {
    // Both texts before either file, so a refused --files-header name leaves neither written.
    for (const fs::path& out : {header, files_header})
        if (!out.empty()) check_not_a_package_file(dir, out);
    std::string main = me::bindings_header(dir, ns, files_header.empty());
    std::string files = files_header.empty() ? "" : me::bindings_files_header(dir, ns, files_header, header);
    me::write_file_if_changed(header, main);
    if (!files_header.empty()) me::write_file_if_changed(files_header, files);
    return 0;
}

int run_embed(const fs::path& dir, const std::string& ns, const fs::path& output, const fs::path& header) {
    std::string ext = output.extension().string();
    if (ext != ".S" && ext != ".s" && ext != ".cpp" && ext != ".cc")
        throw me::usage_error(output.string(), "--output must end in .S or .cpp");
    for (const fs::path& out : {output, header}) check_not_a_package_file(dir, out);
    auto sources = me::embed_model(dir, ns, ext == ".S" || ext == ".s");
    me::write_file_if_changed(output, sources.source);
    me::write_file_if_changed(header, sources.header);
    return 0;
}

int run_pack(const fs::path& dir, const fs::path& output) {
    me::pack_package(dir, output);
    return 0;
}

int run_unpack(const fs::path& file, const fs::path& outdir) {
    me::unpack_model(file, outdir);
    return 0;
}

}  // namespace tool
