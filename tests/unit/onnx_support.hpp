// A real ONNX model for the unit tests, written with the onnx protobuf API.
#pragma once

#include <onnx/onnx_pb.h>

#include <string>

namespace test {

/// A real two-node ONNX model: y = Relu(x + w), with w an initializer.
inline onnx::ModelProto tiny_model() {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.set_producer_name("modelexport-test");
    m.add_opset_import()->set_version(14);
    auto* g = m.mutable_graph();
    g->set_name("g");
    auto add_value = [](onnx::ValueInfoProto* v, const std::string& name) {
        v->set_name(name);
        auto* tt = v->mutable_type()->mutable_tensor_type();
        tt->set_elem_type(onnx::TensorProto_DataType_FLOAT);
        tt->mutable_shape()->add_dim()->set_dim_param("batch_size");
        tt->mutable_shape()->add_dim()->set_dim_value(2);
    };
    add_value(g->add_input(), "x");
    add_value(g->add_output(), "y");
    auto* w = g->add_initializer();
    w->set_name("w");
    w->set_data_type(onnx::TensorProto_DataType_FLOAT);
    w->add_dims(2);
    w->add_float_data(1.0f);
    w->add_float_data(2.0f);
    auto* add = g->add_node();
    add->set_name("/layer/Add");
    add->set_op_type("Add");
    add->add_input("x");
    add->add_input("w");
    add->add_output("s");
    auto* relu = g->add_node();
    relu->set_name("/Relu");
    relu->set_op_type("Relu");
    relu->add_input("s");
    relu->add_output("y");
    return m;
}


}  // namespace test
