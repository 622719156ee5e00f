// modelexport/onnx/project.hpp — the "project" step: the module hierarchy onto an
// ONNX model's nodes (docs/design.md §4), with the checks every staged model
// passes first (§5.1).
//
// The model is read without its weights (onnx/stream.hpp): projection needs node
// names only. Only --embed-hierarchy rewrites the file, so only then is the whole
// model loaded.
#pragma once

#include "modelexport/detail/linkage.hpp"
#include "modelexport/error.hpp"
#include "modelexport/onnx/checks.hpp"
#include "modelexport/onnx/hierarchy.hpp"
#include "modelexport/onnx/hierarchy_embed.hpp"
#include "modelexport/onnx/model.hpp"
#include "modelexport/onnx/stream.hpp"

#include <onnx/onnx_pb.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace modelexport {

/// The parts of the graph's nodes projection needs, in for_each_node_in_tag_order's order
/// (onnx/hierarchy_embed.hpp): the main graph's nodes first (their indices are the graph's), then those
/// of every subgraph (an If's then_branch and else_branch: the merged decoder's nodes all live
/// there), depth first, so --embed-hierarchy puts each tag on the node it was projected for.
inline std::vector<node_view> node_views(const onnx::GraphProto& g) {
    std::vector<node_view> nodes;
    nodes.reserve(static_cast<std::size_t>(g.node_size()));
    for_each_node_in_tag_order(g, [&](const onnx::NodeProto& n) {
        nodes.push_back(
            {n.name(), n.op_type(), {n.input().begin(), n.input().end()}, {n.output().begin(), n.output().end()}});
    });
    return nodes;
}

/// Parameters counted from the initializers' dims. Hostile dims count nothing rather than overflow.
inline long long initializer_parameters(const onnx::GraphProto& g) {
    long long total = 0;
    for (const auto& init : g.initializer()) {
        long long n = 1;
        for (auto d : init.dims())
            if (__builtin_mul_overflow(n, d, &n)) n = 0;
        if (__builtin_add_overflow(total, n, &total)) total = 0;
    }
    return total;
}

/// What to project onto one staged ONNX file.
struct projection_request {
    std::filesystem::path model;                          ///< the staged file
    std::string shown;                                    ///< how errors name it (where it came from)
    std::filesystem::path package_dir;                    ///< where its external data must stay
    const std::vector<traced_module>* modules = nullptr;  ///< the trace; empty or null: scope names only
    std::string root_class;                               ///< the model class ("BertModel"); "Model" when unknown
    bool include_torch_modules = false;
    bool embed = false;  ///< write the tags into the file (--embed-hierarchy)
};

/// What projecting one model gave.
struct projected_model {
    signature sig;
    projection proj;
    long long initializer_parameters = 0;
    std::optional<std::string> rewritten_sha256;  ///< with embed: the new file's hash
};

/// Reads the staged model without weights, refuses bad ONNX with the checks validate runs
/// (external data leaving the package, cycles, undefined inputs), projects the hierarchy and
/// with `embed` writes the tags into the file.
MODELEXPORT_ENTRY projected_model project_model(const projection_request& req);

#if MODELEXPORT_DEFINES(PROJECT)
MODELEXPORT_ENTRY projected_model project_model(const projection_request& req) {
    light_model light;
    try {
        light = load_onnx_light(req.model);
    } catch (const invalid_input& e) {  // named after where the model came from, not the staging copy
        throw invalid_input(req.shown, std::string(e.what()).substr(e.file().size() + 2));
    }
    const onnx::GraphProto& graph = light.model.graph();
    onnx_verdict verdict = check_onnx(light, req.package_dir);
    if (!verdict.external_data.empty()) throw invalid_input(req.shown, verdict.external_data);
    if (!verdict.checker->empty()) throw invalid_input(req.shown, "fails the ONNX checker: " + *verdict.checker);
    projected_model out;
    out.sig = graph_signature(graph);
    static const std::vector<traced_module> no_trace;
    out.proj = project_hierarchy(node_views(graph), req.modules ? *req.modules : no_trace, req.root_class,
                                 req.include_torch_modules);
    if (out.proj.coverage() < 100.0)
        throw export_failed(req.model.string(), "hierarchy projection left nodes untagged");
    out.initializer_parameters = initializer_parameters(graph);
    light.model.Clear();
    if (req.embed) {
        onnx::ModelProto model = load_onnx(req.model, req.shown);
        embed_hierarchy_tags(model, out.proj.tags);
        out.rewritten_sha256 = save_onnx(model, req.model).sha256;
    }
    return out;
}
#endif

}  // namespace modelexport
