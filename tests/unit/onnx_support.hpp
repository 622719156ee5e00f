// Real ONNX models and model sources for the unit tests, written with the onnx protobuf API.
#pragma once

#include "test_support.hpp"

#include "modelexport/onnx/model.hpp"

#include <onnx/onnx_pb.h>

#include <string>

namespace test {

inline void add_tensor_value(onnx::ValueInfoProto* v, const std::string& name, int elem_type, const std::string& dim0,
                             std::int64_t dim1) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    tt->mutable_shape()->add_dim()->set_dim_param(dim0);
    if (dim1 > 0)
        tt->mutable_shape()->add_dim()->set_dim_value(dim1);
    else
        tt->mutable_shape()->add_dim()->set_dim_param("sequence_length");
}

inline onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& name, const std::string& op,
                                 std::initializer_list<std::string> in, const std::string& out) {
    auto* n = g->add_node();
    n->set_name(name);
    n->set_op_type(op);
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
    return n;
}

inline onnx::ModelProto empty_model() {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.set_producer_name("modelexport-test");
    m.add_opset_import()->set_version(14);
    m.mutable_graph()->set_name("g");
    return m;
}

/// A real two-node ONNX model: y = Relu(x + w), with w an initializer.
inline onnx::ModelProto tiny_model() {
    onnx::ModelProto m = empty_model();
    auto* g = m.mutable_graph();
    add_tensor_value(g->add_input(), "x", onnx::TensorProto_DataType_FLOAT, "batch_size", 2);
    add_tensor_value(g->add_output(), "y", onnx::TensorProto_DataType_FLOAT, "batch_size", 2);
    auto* w = g->add_initializer();
    w->set_name("w");
    w->set_data_type(onnx::TensorProto_DataType_FLOAT);
    w->add_dims(2);
    w->add_float_data(1.0f);
    w->add_float_data(2.0f);
    add_node(g, "/layer/Add", "Add", {"x", "w"}, "s");
    add_node(g, "/Relu", "Relu", {"s"}, "y");
    return m;
}

/// A text classifier with Optimum's names: logits[batch, 2] = mean(float(input_ids), axis 1) * w.
/// `weights` floats in w (>= 1024 makes its raw_data large enough for the light reader to skip).
inline onnx::ModelProto text_classifier(int weights = 2) {
    onnx::ModelProto m = empty_model();
    auto* g = m.mutable_graph();
    add_tensor_value(g->add_input(), "input_ids", onnx::TensorProto_DataType_INT64, "batch_size", 0);
    add_tensor_value(g->add_input(), "attention_mask", onnx::TensorProto_DataType_INT64, "batch_size", 0);
    add_tensor_value(g->add_output(), "logits", onnx::TensorProto_DataType_FLOAT, "batch_size", 2);
    auto* w = g->add_initializer();
    w->set_name("classifier.weight");
    w->set_data_type(onnx::TensorProto_DataType_FLOAT);
    w->add_dims(1);
    w->add_dims(weights);
    std::string raw(static_cast<std::size_t>(weights) * 4, '\0');
    w->set_raw_data(raw);
    auto* cast = add_node(g, "/bert/Cast", "Cast", {"input_ids"}, "f");
    auto* to = cast->add_attribute();
    to->set_name("to");
    to->set_type(onnx::AttributeProto::INT);
    to->set_i(onnx::TensorProto_DataType_FLOAT);
    auto* mean = add_node(g, "/bert/ReduceMean", "ReduceMean", {"f"}, "m");
    auto* axes = mean->add_attribute();
    axes->set_name("axes");
    axes->set_type(onnx::AttributeProto::INTS);
    axes->add_ints(1);
    add_node(g, "/classifier/Mul", "Mul", {"m", "classifier.weight"}, "logits");
    return m;
}

/// A local text-classification source (config, tokenizer files) with a prebuilt model.onnx.
inline fs::path prebuilt_source(const fs::path& dir, const onnx::ModelProto& model = text_classifier()) {
    make_text_source(dir);
    modelexport::save_onnx(model, dir / "model.onnx");
    return dir;
}

}  // namespace test
