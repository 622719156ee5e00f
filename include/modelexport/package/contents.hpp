// modelexport/package/contents.hpp — what a package must hold, one rule for all its readers
// (docs/design.md §11): the task it is read for, the ONNX files that task has, the other files a
// reader needs, and whether the task export_metadata.json records can be the package's.
//
// validate reports a breach as failed checks (package.files, task.recorded); pack, embed, bindings
// and inspect refuse the package with invalid_input (exit 5) and the same words. So no reader
// takes a package another reader calls incomplete, or writes a task validate calls wrong.
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/detail/json_file.hpp"
#include "modelexport/error.hpp"
#include "modelexport/onnx/model.hpp"
#include "modelexport/package/file_roles.hpp"
#include "modelexport/package/layout.hpp"
#include "modelexport/package/reader.hpp"
#include "modelexport/tasks.hpp"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace modelexport {

/// model.task of an export_metadata.json document, or "" when it records none.
inline std::string recorded_model_task(const json& meta) {
    auto m = meta.find("model");
    if (m != meta.end() && m->is_object() && m->contains("task") && (*m)["task"].is_string())
        return (*m)["task"].get<std::string>();
    return {};
}

/// model.task as the package's export_metadata.json records it, or "" (none, or unreadable: its readers say why).
inline std::string recorded_task(const fs::path& dir) {
    try {
        const fs::path meta_path = dir / "export_metadata.json";
        if (fs::is_regular_file(meta_path)) return recorded_model_task(read_export_metadata(meta_path));
    } catch (const error&) {}
    return {};
}

/// The task a package is read for: `requested` (validate --task), else the one its export_metadata.json
/// records (the one it was exported for: a bare backbone names none, a decoder's base model could be
/// either feature extraction), else the one config.json's `architectures` names. nullptr: none known.
inline const task_info* package_task(const fs::path& dir, const std::string& requested = {}) {
    json config = json::object();
    try {
        if (fs::is_regular_file(dir / "config.json")) config = read_json_object(dir / "config.json");
    } catch (const error&) {  // validate's config.parse reports it; the other readers read it themselves
    }
    const std::string named = requested.empty() ? recorded_task(dir) : requested;
    if (const task_info* t = find_task(named, config); t || !requested.empty()) return t;
    return task_for_config(config);
}

/// The package's ONNX files by name: an encoder-decoder task's (the first is the primary), else model.onnx.
inline std::vector<std::string> package_models(const task_info* t) {
    if (t && !t->encoder_decoder.empty()) return {t->encoder_decoder.files.begin(), t->encoder_decoder.files.end()};
    return {"model.onnx"};
}

/// What a reader needs of a package besides its ONNX files.
enum class package_need {
    models,    ///< the ONNX files alone: inspect describes any ONNX package, optimum-cli's too
    loadable,  ///< and the files package/files.def requires (config.json): what a loader needs, validate's
               ///< package.files
    exported,  ///< and export_metadata.json, the export's record: what verify compares with, pack, embed and bindings
               ///< carry
};

/// The files `need` asks of the package in `dir` whose ONNX files are `models` (by name, placed by
/// `layout`) that are not regular files there, package-relative, each with what it is when it is there.
inline std::vector<std::string> missing_package_files(const fs::path& dir, package_layout layout,
                                                      const std::vector<std::string>& models, package_need need) {
    std::vector<std::string> required, missing;
    for (const auto& name : models) required.push_back(layout_path(layout, name));
    for (const auto& f : package_files)
        if ((f.required && f.role != file_role::model && need != package_need::models) ||
            (f.role == file_role::metadata && need == package_need::exported))
            required.emplace_back(f.name);
    for (const auto& name : required)
        if (std::string why = regular_file_problem(dir / name); !why.empty())
            missing.push_back(name + (why == "missing" ? "" : " (" + why + ")"));
    return missing;
}

/// The problem missing_package_files' answer is, as every reader words it.
inline std::string missing_files_problem(const std::vector<std::string>& missing) {
    return "missing required file(s) " + joined(missing);
}

/// Opens the package in `dir` as open_package does, then refuses it when it lacks a file `need` asks
/// for (its task's ONNX files included): invalid_input naming the package and the files.
inline package_reader open_complete_package(const fs::path& dir, package_need need) {
    package_reader pkg = open_package(dir);
    const std::vector<std::string> missing =
        missing_package_files(dir, find_layout(dir), package_models(package_task(dir)), need);
    if (!missing.empty()) throw invalid_input(dir.string(), missing_files_problem(missing));
    return pkg;
}

namespace detail {

inline auto takes_input(const signature& sig) {
    return [&sig](std::string_view n) { return sig.input(std::string(n)) != nullptr; };
}

/// Whether a graph has the inputs and outputs `task`'s Optimum class needs (validate's signature.* judge the rest).
inline bool signature_fits(const task_info& task, const signature& sig) {
    for (auto n : task.inputs)
        if (!task.takes_required(n, takes_input(sig))) return false;
    for (auto n : task.outputs)
        if (!sig.output(std::string(n))) return false;
    return true;
}

}  // namespace detail

/// Why `recorded` (export_metadata.json's model.task) cannot be the package's task, "" when it can:
/// it is what tools and people read (inspect, bindings, audits), so it must be a known task, agree
/// with the head config.json's `architectures` names (docs/design.md §5.3), and fit the primary
/// ONNX file `primary_name` (signature `primary`). Without `config` or `primary` those parts are not judged.
inline std::string recorded_task_problem(const std::string& recorded, const json* config, const signature* primary,
                                         const std::string& primary_name) {
    const task_info* task = config ? find_task(recorded, *config) : find_task(recorded);
    if (!task) return "model.task '" + recorded + "' is not a known task";
    if (config) {
        architecture_head head = head_architecture(*config);
        if (!head.name.empty() && !task_fits_head(*task, *head.task))
            return "model.task is " + recorded + " but config.json's architectures names " + head.name + " (" +
                   std::string(head.task->name) + ")";
    }
    if (primary && !detail::signature_fits(*task, *primary))
        return "model.task is " + recorded + " but " + primary_name + " lacks the signature " +
               std::string(task->optimum_class) + " needs";
    return {};
}

}  // namespace modelexport
