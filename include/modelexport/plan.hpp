// modelexport/plan.hpp — which files an export of a source will write, decided without exporting.
//
// `modelexport plan` prints this so a build can declare a package's outputs (docs/design.md §7).
// It resolves the source as the export does (export/source.hpp, the same Hub cache) and walks the same
// file table (package/files.def) with the same rules: model.onnx (an encoder-decoder task's ONNX
// files instead), config.json, the optional files the source has, export_metadata.json. The Meson template applies
// these rules itself at configure time (the tool may not be built yet); tests compare the three lists.
#pragma once

#include "modelexport/detail/json_file.hpp"
#include "modelexport/export/source.hpp"
#include "modelexport/export_options.hpp"
#include "modelexport/package/file_roles.hpp"
#include "modelexport/package/layout.hpp"
#include "modelexport/package/variant_names.hpp"
#include "modelexport/tasks.hpp"

#include <string>
#include <vector>

namespace modelexport {

/// `auto` is prebuilt when the source has an ONNX model and no --model factory was given, else htp (§3).
inline strategy choose_strategy(strategy requested, const model_source& src, const std::string& model_factory) {
    if (requested != strategy::automatic) return requested;
    bool has_onnx = src.file("model.onnx") || src.file("onnx/model.onnx");
    return has_onnx && model_factory.empty() ? strategy::prebuilt : strategy::htp;
}

struct plan_options {
    std::string source;  ///< directory or Hub id org/name[@revision]
    fs::path hub_cache;  ///< empty: hub_cache_dir() (the environment)
    std::string task;    ///< empty: from config.json architectures
    strategy how = strategy::automatic;
    std::string onnx_file;                         ///< prebuilt: the ONNX file to take
    std::string model_factory;                     ///< htp's --model (it makes `auto` choose htp)
    package_layout layout = package_layout::flat;  ///< the export's --layout: where the ONNX files are listed
    std::vector<std::string> variants;             ///< the export's --variants: their files follow the ONNX files
};

struct package_plan {
    model_source source;
    strategy how = strategy::automatic;  ///< never automatic once planned
    package_layout layout = package_layout::flat;
    std::string task;
    std::vector<std::string>
        files;  ///< package-relative paths (onnx/model.onnx in hub), in the order a build declares them
    std::vector<fs::path> read;  ///< what the decision depends on (config, Hub ref, the source listing)
};

/// A strategy name as the CLI takes it (already checked against the four names).
inline strategy parse_strategy(const std::string& name) {
    return name == "htp"        ? strategy::htp
           : name == "prebuilt" ? strategy::prebuilt
           : name == "command"  ? strategy::command
                                : strategy::automatic;
}

namespace detail {

/// The source file the prebuilt strategy copies as model.onnx (stage_prebuilt's candidates), or "".
inline std::string prebuilt_model_name(const model_source& src, const std::string& onnx_file) {
    for (const std::string& c : onnx_file.empty() ? std::vector<std::string>{"model.onnx", "onnx/model.onnx"}
                                                  : std::vector<std::string>{onnx_file})
        if (src.file(c)) return c;
    return {};
}

/// Whether the package gets the optional file `name` (a package/files.def entry that is not required).
inline bool plan_has(const package_file& f, const model_source& src, strategy how, const std::string& onnx_file) {
    if (f.role == file_role::metadata) return false;  // always written, listed last
    if (f.role == file_role::variant) return false;   // only on request: plan_package lists them
    if (f.role != file_role::model) return src.file(std::string(f.name)).has_value();  // the copier's rule
    if (f.name != std::string_view("model.onnx_data")) return false;  // ONNX files: the task's (package_onnx_files)
    // model.onnx_data: prebuilt copies the one beside the model it takes. htp writes one only past
    // 2 GiB and a command whenever it likes: neither is known before running, so a build that
    // needs it declares 'files' explicitly.
    if (how != strategy::prebuilt) return false;
    std::string model = prebuilt_model_name(src, onnx_file);
    return !model.empty() && src.file((fs::path(model).parent_path() / f.name).string()).has_value();
}

}  // namespace detail

/// The ONNX files the export writes: an encoder-decoder task's htp export writes the task's files
/// (share/tasks.json `encoder_decoder.files`: encoder_model.onnx, decoder_model.onnx, ...) where
/// every other export writes model.onnx (prebuilt and command copy one model.onnx whatever the task).
inline std::vector<std::string> package_onnx_files(const task_info& task, strategy how) {
    if (how != strategy::htp || task.encoder_decoder.empty()) return {"model.onnx"};
    return {task.encoder_decoder.files.begin(), task.encoder_decoder.files.end()};
}

/// Plans an export: resolves the source and task and lists the files the package will hold.
/// Throws what the export would throw for the same source (model_not_found, config_missing, ...).
inline package_plan plan_package(const plan_options& opt) {
    package_plan p;
    check_onnx_file_option(opt.onnx_file);  // the export's own rule: a plan never names a file the export refuses
    p.source = resolve_source(opt.source, opt.hub_cache.empty() ? hub_cache_dir() : opt.hub_cache);
    auto [config_path, config] = read_source_config(p.source);
    const task_info& task = resolve_task(opt.task, config, config_path.string());
    p.task = std::string(task.name);
    p.how = choose_strategy(opt.how, p.source, opt.model_factory);  // the export's own choice of `auto`
    p.read.push_back(config_path);
    if (!p.source.ref.empty()) p.read.push_back(p.source.ref);
    p.read.push_back(p.source.dir);

    p.files = package_onnx_files(task, p.how);
    for (auto& f : variant_files(package_onnx_files(task, p.how), opt.variants)) p.files.push_back(std::move(f));
    p.files.emplace_back("config.json");
    for (const auto& f : package_files)
        if (!f.required && detail::plan_has(f, p.source, p.how, opt.onnx_file)) p.files.emplace_back(f.name);
    p.files.emplace_back("export_metadata.json");
    p.layout = opt.layout;
    for (auto& f : p.files) f = layout_path(opt.layout, f);  // the same mapping as the export's place step
    return p;
}

inline json to_json(const package_plan& p) {
    json read = json::array();
    for (const auto& r : p.read) read.push_back(r.string());
    return {{"source",
             {{"kind", p.source.from_cache() ? "hub_cache" : "local"},
              {"spec", p.source.spec},
              {"dir", p.source.dir.string()},
              {"revision", p.source.revision},
              {"commit", p.source.commit}}},
            {"strategy", to_string(p.how)},
            {"layout", to_string(p.layout)},
            {"task", p.task},
            {"files", p.files},
            {"read", read}};
}

}  // namespace modelexport
