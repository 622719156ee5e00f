// modelexport/export/build_edge.hpp — what a build system adds to an export (docs/design.md §7):
// the declared outputs (--expect), build files kept in the package directory
// (--keep, the depfile), the depfile and the --report file.
//
// Side outputs are written BEFORE the package is swapped in (§11): a depfile or
// report that cannot be written fails the export while the previous package (or
// none) is still in place. A report that cannot be written while the export fails
// anyway never replaces the export's own error.
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/detail/json_file.hpp"
#include "modelexport/error.hpp"
#include "modelexport/export.hpp"
#include "modelexport/export/depfile.hpp"
#include "modelexport/package/reader.hpp"
#include "modelexport/version.hpp"

#include <set>
#include <string>
#include <vector>

namespace modelexport {

/// --expect: the staged package must hold exactly the declared files (§7 "Declared outputs").
inline void check_expected(const fs::path& staging, const std::vector<std::string>& expect, const fs::path& output) {
    if (expect.empty()) return;
    std::set<std::string> declared(expect.begin(), expect.end()), actual;
    for (const auto& name : package_entries(staging))
        actual.insert(name);                  // package-relative: "onnx/model.onnx" in hub
    std::vector<std::string> missing, extra;  // declared but not produced; produced but not declared
    for (const auto& d : declared)
        if (!actual.count(d)) missing.push_back(d);
    for (const auto& a : actual)
        if (!declared.count(a)) extra.push_back(a);
    if (missing.empty() && extra.empty()) return;
    // The build decided the list when it was configured (from the source) or took the user's
    // explicit 'files'/FILES list: the fix is a reconfigure after a source change, else that list.
    std::string both = missing.empty() || extra.empty() ? "" : " and ";
    std::string edit = (missing.empty() ? "" : "remove " + detail::join(missing)) + both +
                       (extra.empty() ? "" : "add " + detail::join(extra));
    throw usage_error(
        output.string(),
        "the package does not match the declared outputs (" +
            (missing.empty() ? "" : "declared but not produced: " + detail::join(missing)) +
            (both.empty() ? "" : "; ") + (extra.empty() ? "" : "produced but not declared: " + detail::join(extra)) +
            ")",
        "if the source changed since the build was configured, reconfigure (meson setup --reconfigure, or "
        "rerun cmake); if the model's 'files' list is explicit, " +
            edit + " there");
}

/// True when `file` names an entry of the package directory `output` itself.
inline bool inside_package_dir(const fs::path& file, const fs::path& output) {
    fs::path out = fs::absolute(output).lexically_normal();
    if (out.filename().empty()) out = out.parent_path();
    return fs::absolute(file).lexically_normal().parent_path() == out;
}

/// The depfile's target: the build's first declared output (ninja and CMake attach a depfile to
/// its edge's first output; with Meson's hub layout that edge's outputs are the root files, see
/// modules/meson/package/onnx), else the primary ONNX file at its layout path.
inline fs::path depfile_target(const fs::path& output, const std::vector<std::string>& expect, const json& metadata) {
    if (!expect.empty()) return output / expect.front();
    return output / metadata["layout"]["onnx_files"][0].get<std::string>();
}

/// Writes the depfile before the commit. One that lives in the package directory is written
/// into the staging directory, so the swap puts the new one in place with the package.
inline void write_depfile_before_commit(const fs::path& depfile, const fs::path& staging, const fs::path& output,
                                        const fs::path& target, const std::vector<fs::path>& inputs) {
    fs::path where = inside_package_dir(depfile, output) ? staging / depfile.filename() : depfile;
    write_depfile(where, target.string(), inputs);
}

/// The report of a successful export (README "Export report").
inline json success_report(const export_result& r, const fs::path& metadata_file) {
    json steps = json::object();
    for (const auto& [name, secs] : r.step_seconds) steps[name] = secs;
    std::uintmax_t model = 0, configs = 0;
    for (const auto& [name, f] : r.metadata["files"].items())
        (f["role"] == "model" ? model : configs) += f["size"].get<std::uintmax_t>();
    std::uintmax_t metadata = fs::file_size(metadata_file);
    double overhead = model ? 100.0 * static_cast<double>(configs + metadata) / static_cast<double>(model) : 0.0;
    return {{"result", "ok"},
            {"steps_seconds", steps},
            {"exporter_seconds", r.exporter_seconds},
            {"sizes", {{"model", model}, {"configs", configs}, {"metadata", metadata}, {"overhead_percent", overhead}}},
            {"task", r.metadata["model"]["task"]},
            {"cache", r.cache.to_json()},
            {"statistics", r.metadata["statistics"]}};
}

/// Runs export_package with the build edge's additions.
MODELEXPORT_ENTRY export_result export_for_build(const export_options& opt, const build_edge& edge);

#if MODELEXPORT_DEFINES(EXPORT)
MODELEXPORT_ENTRY export_result export_for_build(const export_options& opt, const build_edge& edge) {
    json report{{"tool", "modelexport"}, {"version", version}, {"source", opt.source}, {"output", opt.output.string()}};
    auto write_report = [&](const json& outcome) {
        json doc = report;
        doc.update(outcome);
        write_file(edge.report, to_canonical_text(doc));
    };
    export_hooks hooks;
    for (const auto& name : edge.keep)  // a file beside the package's own: one name in OUTDIR, never a path out of it
        if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos || role_of(name))
            throw usage_error(
                "--keep",
                "'" + printable(name) + "' is not a file name in OUTDIR (one component, not a package file's name)");
    hooks.build_files.insert(edge.keep.begin(), edge.keep.end());
    if (!edge.depfile.empty() && inside_package_dir(edge.depfile, opt.output))
        hooks.build_files.insert(edge.depfile.filename().string());
    hooks.check_staged = [&](const fs::path& staging) { check_expected(staging, edge.expect, opt.output); };
    hooks.before_commit = [&](const fs::path& staging, const export_result& r) {
        if (!edge.depfile.empty())
            write_depfile_before_commit(edge.depfile, staging, opt.output,
                                        depfile_target(opt.output, edge.expect, r.metadata), r.inputs);
        if (!edge.report.empty()) write_report(success_report(r, staging / "export_metadata.json"));
    };
    export_result r;
    try {
        r = export_package(opt, hooks);
    } catch (const error& e) {
        if (!edge.report.empty()) {
            try {
                write_report({{"result", "failed"}, {"failure", e.what()}, {"exit_code", static_cast<int>(e.code())}});
            } catch (const std::exception& report_error) {  // the export's own error is the one to report
                if (opt.log) opt.log(std::string("cannot write the report: ") + report_error.what());
            }
        }
        throw;
    }
    // The report written before the commit lacks the commit's time; it was writable a moment ago,
    // and a failure now must not turn a committed package into an error exit.
    if (!edge.report.empty()) try {
            write_report(success_report(r, r.package / "export_metadata.json"));
        } catch (const std::exception& e) {
            if (opt.log) opt.log(std::string("cannot update the report: ") + e.what());
        }
    return r;
}
#endif

}  // namespace modelexport
