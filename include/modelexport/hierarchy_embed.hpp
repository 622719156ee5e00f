// modelexport/hierarchy_embed.hpp — hierarchy tags inside model.onnx.
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
#include <vector>

namespace modelexport {

inline constexpr int node_metadata_props_field = 9;
inline constexpr const char* hierarchy_tag_key = "hierarchy_tag";

/// Adds a `hierarchy_tag` metadata entry to every node of the main graph,
/// replacing one written by an earlier run.
inline void embed_hierarchy_tags(onnx::ModelProto& model, const std::vector<std::string>& tags) {
    auto* graph = model.mutable_graph();
    for (int i = 0; i < graph->node_size() && static_cast<std::size_t>(i) < tags.size(); ++i) {
        auto* node = graph->mutable_node(i);
        auto* unknown = node->GetReflection()->MutableUnknownFields(node);
        for (int k = unknown->field_count() - 1; k >= 0; --k) {
            const auto& f = unknown->field(k);
            if (f.number() != node_metadata_props_field || f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) continue;
            onnx::StringStringEntryProto entry;
            if (entry.ParseFromString(f.length_delimited()) && entry.key() == hierarchy_tag_key) unknown->DeleteSubrange(k, 1);
        }
        onnx::StringStringEntryProto entry;
        entry.set_key(hierarchy_tag_key);
        entry.set_value(tags[static_cast<std::size_t>(i)]);
        unknown->AddLengthDelimited(node_metadata_props_field, entry.SerializeAsString());
    }
}

/// The `hierarchy_tag` of each node that has one, by node index.
inline std::map<int, std::string> embedded_hierarchy_tags(const onnx::GraphProto& graph) {
    std::map<int, std::string> tags;
    for (int i = 0; i < graph.node_size(); ++i) {
        const auto& node = graph.node(i);
        const auto& unknown = node.GetReflection()->GetUnknownFields(node);
        for (int k = 0; k < unknown.field_count(); ++k) {
            const auto& f = unknown.field(k);
            if (f.number() != node_metadata_props_field || f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) continue;
            onnx::StringStringEntryProto entry;
            if (entry.ParseFromString(f.length_delimited()) && entry.key() == hierarchy_tag_key) tags[i] = entry.value();
        }
    }
    return tags;
}

}  // namespace modelexport
