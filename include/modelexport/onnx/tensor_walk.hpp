// modelexport/onnx/tensor_walk.hpp — every TensorProto a model holds, in one walk.
//
// A tensor can carry external data wherever ONNX allows a tensor, and ONNX
// Runtime reads all of them: graph initializers, sparse initializers (values
// and indices), node attributes (`t`, `tensors`, `sparse_tensor`,
// `sparse_tensors`), the graphs of attributes (`g`, `graphs`: If/Loop/Scan
// bodies) at any depth, model-local functions (their nodes, and the default
// values of their attributes, `attribute_proto`), and the training graphs
// (`training_info`: `initialization` and `algorithm`). This walk is the single
// list of those places (docs/design.md §11): the containment check, the
// payload-size check, the checker's location rewrite and the external-data
// gathering all visit tensors through it, so none can forget one. A unit test
// (test_onnx_stream "the walk visits every field of the schema that can hold a
// tensor") builds a model with a tensor in every such field of onnx.proto, by
// reflection, so a field added to the schema fails it until it is walked here.
//
// It walks the parsed message, so fields that appeared several times in the file
// have already been merged as protobuf (and so ONNX Runtime) merges them.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/unknown_field_set.h>
#include <onnx/onnx_pb.h>

#include <string>

namespace modelexport {

/// Where a visited tensor sits, for messages ("graph 'g' initializer 'w'",
/// "node 'If_0' attribute 'then_branch' > graph 'then' node 'c' attribute 'value'").
struct tensor_site {
    std::string where;
    /// Index into the main graph's initializer list, -1 elsewhere: the light reader
    /// (onnx/stream.hpp) records its skipped payloads by this index.
    int main_initializer = -1;
};

namespace detail {

template <class Visit>
void walk_graph(onnx::GraphProto& g, const std::string& prefix, bool main, Visit& visit);

inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

template <class Visit>
void walk_sparse(onnx::SparseTensorProto& s, const std::string& where, Visit& visit) {
    // mutable_*() on an absent singular field would add it: ask has_*() first.
    if (s.has_values()) visit(*s.mutable_values(), tensor_site{where + " values"});
    if (s.has_indices()) visit(*s.mutable_indices(), tensor_site{where + " indices"});
}

template <class Visit>
void walk_attribute(onnx::AttributeProto& a, const std::string& prefix, Visit& visit) {
    const std::string where = prefix + " attribute " + quoted(a.name());
    if (a.has_t()) visit(*a.mutable_t(), tensor_site{where});
    for (auto& t : *a.mutable_tensors()) visit(t, tensor_site{where + " tensor " + quoted(t.name())});
    if (a.has_sparse_tensor()) walk_sparse(*a.mutable_sparse_tensor(), where, visit);
    for (auto& s : *a.mutable_sparse_tensors()) walk_sparse(s, where, visit);
    if (a.has_g()) walk_graph(*a.mutable_g(), where + " > ", false, visit);
    for (auto& g : *a.mutable_graphs()) walk_graph(g, where + " > ", false, visit);
}

template <class Visit>
void walk_nodes(google::protobuf::RepeatedPtrField<onnx::NodeProto>& nodes, const std::string& prefix, Visit& visit) {
    for (auto& n : nodes)
        for (auto& a : *n.mutable_attribute()) walk_attribute(a, prefix + "node " + quoted(n.name()), visit);
}

/// FunctionProto.attribute_proto, the default values of a function's attributes: field 11 of
/// onnx.proto since ONNX 1.13. Generated code of older ONNX keeps it as an unknown field, which
/// ONNX Runtime still reads; so it is walked whichever the build has: through reflection when
/// the schema knows it, else by parsing the unknown field's entries (written back only when the
/// visitor changed them).
inline constexpr int function_attribute_proto_field = 11;

template <class Visit>
void walk_function_attribute_defaults(onnx::FunctionProto& f, const std::string& where, Visit& visit) {
    const auto* reflection = f.GetReflection();
    if (const auto* known = f.GetDescriptor()->FindFieldByNumber(function_attribute_proto_field)) {
        for (int i = 0; i < reflection->FieldSize(f, known); ++i)
            if (auto* a = dynamic_cast<onnx::AttributeProto*>(reflection->MutableRepeatedMessage(&f, known, i)))
                walk_attribute(*a, where, visit);
        return;
    }
    if (reflection->GetUnknownFields(f).empty()) return;
    google::protobuf::UnknownFieldSet& unknown = *reflection->MutableUnknownFields(&f);
    for (int i = 0; i < unknown.field_count(); ++i) {
        google::protobuf::UnknownField& field = *unknown.mutable_field(i);
        if (field.number() != function_attribute_proto_field ||
            field.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
            continue;
        onnx::AttributeProto a;
        if (!a.ParseFromString(field.length_delimited()))
            continue;  // not an AttributeProto: no runtime reads a tensor from it
        const std::string before = a.SerializeAsString();
        walk_attribute(a, where, visit);
        if (std::string after = a.SerializeAsString(); after != before) *field.mutable_length_delimited() = after;
    }
}

template <class Visit>
void walk_function(onnx::FunctionProto& f, Visit& visit) {
    const std::string here = "function " + quoted(f.name());
    walk_nodes(*f.mutable_node(), here + " ", visit);
    walk_function_attribute_defaults(f, here + " default", visit);
}

template <class Visit>
void walk_training_info(onnx::TrainingInfoProto& info, int index, Visit& visit) {
    const std::string here = "training_info " + std::to_string(index);
    if (info.has_initialization())
        walk_graph(*info.mutable_initialization(), here + " initialization > ", false, visit);
    if (info.has_algorithm()) walk_graph(*info.mutable_algorithm(), here + " algorithm > ", false, visit);
}

template <class Visit>
void walk_graph(onnx::GraphProto& g, const std::string& prefix, bool main, Visit& visit) {
    const std::string here = prefix + "graph " + quoted(g.name());
    int i = 0;
    for (auto& t : *g.mutable_initializer()) {
        visit(t, tensor_site{here + " initializer " + quoted(t.name()), main ? i : -1});
        ++i;
    }
    for (auto& s : *g.mutable_sparse_initializer()) walk_sparse(s, here + " sparse initializer", visit);
    walk_nodes(*g.mutable_node(), here + " ", visit);
}

}  // namespace detail

/// Calls `visit(onnx::TensorProto&, const tensor_site&)` for every tensor in `model`, in
/// a fixed order (per graph: initializers, sparse initializers, nodes; then functions,
/// then training graphs).
/// The walk itself changes nothing (it never creates absent fields); the visitor may
/// change the tensor it is given.
template <class Visit>
void for_each_tensor(onnx::ModelProto& model, Visit&& visit) {
    if (model.has_graph()) detail::walk_graph(*model.mutable_graph(), "", true, visit);
    for (auto& f : *model.mutable_functions()) detail::walk_function(f, visit);
    int i = 0;
    for (auto& info : *model.mutable_training_info()) detail::walk_training_info(info, i++, visit);
}

}  // namespace modelexport
