// modelexport/package/single_file.hpp — a package's model.onnx taken whole into one artifact:
// pack's single-file model, embed's linked bytes (docs/cli.md "Single-file models").
//
// Both carry the model's bytes alone, so both ask the same of a package, in one place: complete
// (its files and the export's record, package/contents.hpp), one ONNX file, a model that parses
// with every payload the size its tensor needs (load_onnx_light), and no tensor whose data is in
// another file (that file would be outside the artifact).
#pragma once

#include "modelexport/detail/file_io.hpp"
#include "modelexport/error.hpp"
#include "modelexport/onnx/model.hpp"
#include "modelexport/onnx/stream.hpp"
#include "modelexport/onnx/tensor_walk.hpp"
#include "modelexport/package/contents.hpp"
#include "modelexport/package/file_roles.hpp"
#include "modelexport/package/layout.hpp"
#include "modelexport/package/reader.hpp"

#include <filesystem>
#include <string>

namespace modelexport {

namespace detail {

/// The first tensor of `model` that keeps its data in another file, or empty: a single-file model
/// may hold none (its location, even model.onnx_data, would be outside it).
/// A light model's skipped payloads are its own bytes, not external data (onnx/stream.hpp).
inline std::string first_external_tensor(light_model& light) {
    std::string found;
    for_each_tensor(light.model, [&](onnx::TensorProto& t, const tensor_site& site) {
        if (found.empty() && is_external(t) && !light.skipped_at(site))
            found = external_reference_of(t, site.where).tensor;
    });
    return found;
}

}  // namespace detail

/// The model file of a package opened for `command` (pack, embed) to take whole.
struct single_file_model {
    package_reader package;
    package_layout layout;
    fs::path shown;  ///< its path in messages (dir/model.onnx, dir/onnx/model.onnx)
    unique_fd fd;    ///< the file checked: read it through read_path(), whatever the name says now

    fs::path read_path() const { return "/proc/self/fd/" + std::to_string(fd.get()); }
};

/// Opens the package in `dir` and its model.onnx for `command`, refusing (invalid_input) a package
/// that is incomplete, holds several ONNX models, or whose model does not parse or keeps data in another file.
inline single_file_model open_single_file_model(const fs::path& dir, const std::string& command) {
    package_reader pkg = open_complete_package(dir, package_need::exported);
    if (std::string several = multi_file_models(dir); !several.empty())
        throw invalid_input(dir.string(), "holds several ONNX models (" + several + "); " + command +
                                              " takes a single-file package (model.onnx)");
    const package_layout layout = find_layout(dir);
    const std::string model_name = layout_path(layout, "model.onnx"),
                      data_name = layout_path(layout, "model.onnx_data");
    single_file_model m{std::move(pkg), layout, dir / model_name, unique_fd()};
    m.fd = m.package.open(model_name);
    if (!m.fd) throw invalid_input(m.shown.string(), "missing");  // removed since the package was opened
    if (m.package.open(data_name))
        throw invalid_input((dir / data_name).string(), "external data cannot be taken into one file by " + command);
    light_model graph = load_onnx_light(m.read_path(), m.shown.string());
    if (std::string tensor = detail::first_external_tensor(graph); !tensor.empty())
        throw invalid_input(m.shown.string(), tensor + " keeps its data in another file; " + command +
                                                  " takes a model that holds all its tensors");
    return m;
}

}  // namespace modelexport
