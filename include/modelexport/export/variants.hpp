// modelexport/export/variants.hpp — int8, fp16, 4-bit and ORT-format variants of a package's ONNX files
// (docs/variants.md).
//
// `export --variants q8,fp16,ort` runs tools/htp_variants.py (beside the exporter, same interpreter)
// on the staged fp32 files after projection, so the variants carry the hierarchy tags the fp32
// files got. The tool writes the files beside them and a report with each file's size and the
// accuracy measured against fp32 on the reference check's inputs; a variant past its bound is the
// tool's exit status 4, variant_inaccurate here. The variant step runs after the export cache's
// step, so the cache holds the fp32 export alone and a build that only changes the list reuses it.
#pragma once

#include "modelexport/detail/json_file.hpp"
#include "modelexport/detail/linkage.hpp"
#include "modelexport/error.hpp"
#include "modelexport/export/exporter_call.hpp"
#include "modelexport/export/source.hpp"
#include "modelexport/export_options.hpp"
#include "modelexport/package/file_roles.hpp"
#include "modelexport/package/variant_names.hpp"

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace modelexport {

inline constexpr int variant_out_of_bounds_status = 4;  ///< tools/htp_variants.py's status for a variant past its bound

/// What the variant step made: the staged files (names in the staging root, external data included)
/// and the metadata's `variants` section.
struct made_variants {
    std::vector<std::string> files;
    json record = json::array();
};

namespace detail {

/// The report's files (ONNX, external data, ORT, operators), each checked against the package file table.
inline std::vector<std::string> report_files(const json& report, const std::string& shown) {
    std::vector<std::string> out;
    auto take = [&](const json& name) {
        if (!name.is_string() || role_of(name.get<std::string>()) != file_role::variant)
            throw export_failed(
                shown, "reports a variant file " + printable(name.dump()) + " that is not a package's variant file");
        out.push_back(name.get<std::string>());
    };
    if (!report.is_object() || !report.contains("variants") || !report["variants"].is_array())
        throw export_failed(shown, "wrote a report without a \"variants\" list");
    for (const auto& v : report["variants"]) {
        if (!v.is_object() || !v.contains("files") || !v["files"].is_array())
            throw export_failed(shown, "wrote a variant without \"files\"");
        for (const auto& f : v["files"]) {
            if (!f.is_object() || !f.contains("file"))
                throw export_failed(shown, "wrote a variant file entry without \"file\"");
            take(f["file"]);
            if (f.contains("data_file")) take(f["data_file"]);
        }
        if (v.contains("operators_file")) take(v["operators_file"]);
    }
    return out;
}

}  // namespace detail

/// The variant step: tools/htp_variants.py makes `opt.variants` of the staged ONNX files `models`
/// (the source's model gives the reference inputs). Throws variant_inaccurate for a variant past its
/// bound, export_failed when the tool fails or writes something else than the files it names.
MODELEXPORT_ENTRY made_variants make_variants(const fs::path& stage, const std::vector<std::string>& models,
                                              const model_source& src, const std::string& task,
                                              const export_options& opt);

#if MODELEXPORT_DEFINES(PRODUCE)
MODELEXPORT_ENTRY made_variants make_variants(const fs::path& stage, const std::vector<std::string>& models,
                                              const model_source& src, const std::string& task,
                                              const export_options& opt) {
    const fs::path script = opt.exporter_script.parent_path() / "htp_variants.py";
    const std::string shown = script.string();
    if (!fs::is_regular_file(script)) throw export_failed(shown, "variant tool not found", "reinstall modelexport");
    const fs::path report = stage / ".variants.json";
    std::string list;
    for (const auto& v : opt.variants) list += (list.empty() ? "" : ",") + v;
    std::vector<std::string> args{shown,           "--dir",    stage.string(),   "--variants", list, "--report",
                                  report.string(), "--source", src.dir.string(), "--task",     task, "--files"};
    args.insert(args.end(), models.begin(), models.end());
    if (src.boundary != src.dir) args.insert(args.end(), {"--source-boundary", src.boundary.string()});
    if (!opt.model_factory.empty()) args.insert(args.end(), {"--model", opt.model_factory});
    for (const auto& t : opt.variant_tolerances) args.insert(args.end(), {"--tolerance", t});
    run_result r = run_exporter_process(opt.python, args, opt.timeout, opt.exporter_line);
    if (exited_with(r, variant_out_of_bounds_status))
        throw variant_inaccurate(shown, last_error_from(r, "variant past"),
                                 "--variant-tolerance [VARIANT:]MEASURE=VALUE sets another bound (docs/variants.md)");
    if (exited_with(r, 2)) throw usage_error("--variant-tolerance", last_error_line(r));
    if (!r.ok()) {
        std::string tail = r.stderr_tail();
        throw export_failed(
            shown, "variant tool failed (" + r.describe(opt.timeout) + ")" + (tail.empty() ? "" : ": " + tail));
    }
    made_variants out;
    json doc = read_json_object(report);
    fs::remove(report);
    out.files = detail::report_files(doc, shown);
    for (const auto& f : out.files)
        if (!fs::is_regular_file(fs::symlink_status(stage / f)))
            throw export_failed(shown, "reports " + f + " but did not write it as a file");
    out.record = doc["variants"];
    return out;
}
#endif

/// The report's file names as package-relative paths of `layout` (what export_metadata.json lists).
inline json variants_metadata(json record, const std::function<std::string(const std::string&)>& path_of) {
    auto place = [&](json& entry, const char* key) { entry[key] = path_of(entry[key].get<std::string>()); };
    for (auto& v : record) {
        for (auto& f : v["files"]) {
            place(f, "file");
            place(f, "of");
            if (f.contains("data_file")) place(f, "data_file");
        }
        if (v.contains("operators_file")) place(v, "operators_file");
    }
    return record;
}

}  // namespace modelexport
