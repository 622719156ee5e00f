// modelexport/onnx/hierarchy_embed.hpp — hierarchy tags inside model.onnx.
//
// Tags go into NodeProto.metadata_props (field 9, ONNX >= 1.16) under the key
// "hierarchy_tag". A node *attribute* would break onnx::checker ("Unrecognized
// attribute"), which is what the Python original ran into. Debian's ONNX 1.12
// headers do not know field 9, so it is written as a protobuf unknown field with
// the exact wire format of `repeated StringStringEntryProto metadata_props = 9`:
// newer readers (ONNX Runtime, onnx >= 1.16) see a real field, and 1.12 keeps it
// untouched through parse and serialise.
#pragma once

#include <google/protobuf/unknown_field_set.h>
#include <onnx/onnx_pb.h>

#include <map>
#include <string>
#include <type_traits>
#include <vector>

namespace modelexport {

inline constexpr int node_metadata_props_field = 9;
inline constexpr const char* hierarchy_tag_key = "hierarchy_tag";

/// Calls `visit(node)` for every node in the order hierarchy tags are indexed by (node_views in
/// onnx/project.hpp builds its list this way too): the graph's own nodes first, so their indices are the
/// graph's, then, node by node and attribute by attribute, every subgraph (an If's then_branch and
/// else_branch, a Loop's body) the same way, depth first. The merged seq2seq decoder's nodes all
/// live in its If's branches, so tags that stopped at the main graph would miss almost all of them.
/// `Graph` is `onnx::GraphProto` (visits mutable nodes) or `const onnx::GraphProto`.
template <class Graph, class Visit>
void for_each_node_in_tag_order(Graph& g, Visit&& visit) {
    constexpr bool readonly = std::is_const_v<Graph>;
    auto& nodes = [&]() -> auto& {
        if constexpr (readonly)
            return g.node();
        else
            return *g.mutable_node();
    }
    ();
    for (auto& n : nodes) visit(n);
    for (auto& n : nodes) {
        auto& attributes = [&]() -> auto& {
            if constexpr (readonly)
                return n.attribute();
            else
                return *n.mutable_attribute();
        }
        ();
        for (auto& a : attributes) {
            if (a.has_g()) {
                if constexpr (readonly)
                    for_each_node_in_tag_order(a.g(), visit);
                else
                    for_each_node_in_tag_order(*a.mutable_g(), visit);
            }
            auto& graphs = [&]() -> auto& {
                if constexpr (readonly)
                    return a.graphs();
                else
                    return *a.mutable_graphs();
            }
            ();
            for (auto& sg : graphs) for_each_node_in_tag_order(sg, visit);
        }
    }
}

/// Adds a `hierarchy_tag` metadata entry to every node, subgraph nodes included (tags in
/// for_each_node_in_tag_order's order, as project_hierarchy returns them), replacing one written
/// by an earlier run.
inline void embed_hierarchy_tags(onnx::ModelProto& model, const std::vector<std::string>& tags) {
    std::size_t i = 0;
    for_each_node_in_tag_order(*model.mutable_graph(), [&](onnx::NodeProto& node) {
        if (i >= tags.size()) return;
        auto* unknown = node.GetReflection()->MutableUnknownFields(&node);
        for (int k = unknown->field_count() - 1; k >= 0; --k) {
            const auto& f = unknown->field(k);
            if (f.number() != node_metadata_props_field ||
                f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
                continue;
            onnx::StringStringEntryProto entry;
            if (entry.ParseFromString(f.length_delimited()) && entry.key() == hierarchy_tag_key)
                unknown->DeleteSubrange(k, 1);
        }
        onnx::StringStringEntryProto entry;
        entry.set_key(hierarchy_tag_key);
        entry.set_value(tags[i++]);
        unknown->AddLengthDelimited(node_metadata_props_field, entry.SerializeAsString());
    });
}

/// The `hierarchy_tag` of each node that has one, by index in for_each_node_in_tag_order's order.
inline std::map<int, std::string> embedded_hierarchy_tags(const onnx::GraphProto& graph) {
    std::map<int, std::string> tags;
    int i = 0;
    for_each_node_in_tag_order(graph, [&](const onnx::NodeProto& node) {
        const auto& unknown = node.GetReflection()->GetUnknownFields(node);
        for (int k = 0; k < unknown.field_count(); ++k) {
            const auto& f = unknown.field(k);
            if (f.number() != node_metadata_props_field ||
                f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
                continue;
            onnx::StringStringEntryProto entry;
            if (entry.ParseFromString(f.length_delimited()) && entry.key() == hierarchy_tag_key)
                tags[i] = entry.value();
        }
        ++i;
    });
    return tags;
}

}  // namespace modelexport
