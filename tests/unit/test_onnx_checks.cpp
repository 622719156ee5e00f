// The ONNX checks export and validate share (onnx/checks.hpp), on models saved to real files.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/onnx/checks.hpp"
#include "modelexport/onnx/stream.hpp"

using namespace modelexport;

namespace {

/// `m` saved as dir/model.onnx and read back as the export and the validator read it.
onnx_verdict check_saved(const onnx::ModelProto& m, const test::temp_dir& dir) {
    save_onnx(m, dir / "model.onnx");
    light_model light = load_onnx_light(dir / "model.onnx");
    return check_onnx(light, dir.path());
}

void make_external(onnx::TensorProto* t, const std::string& location, std::int64_t offset, std::int64_t length) {
    t->clear_float_data();
    t->clear_raw_data();
    t->clear_external_data();
    t->set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
    auto add = [&](const char* k, const std::string& v) {
        auto* e = t->add_external_data();
        e->set_key(k);
        e->set_value(v);
    };
    add("location", location);
    add("offset", std::to_string(offset));
    if (length >= 0) add("length", std::to_string(length));  // none: to the end of the file
}

}  // namespace

TEST_CASE("a valid model passes both checks") {
    test::temp_dir t;
    onnx_verdict v = check_saved(test::tiny_model(), t);
    CHECK(v.external_data.empty());
    REQUIRE(v.checker);
    CHECK(v.checker->empty());
}

TEST_CASE("a payload that is not the size its type and shape need fails before onnx::checker") {
    test::temp_dir t;
    onnx::ModelProto m = test::tiny_model();
    m.mutable_graph()->mutable_initializer(0)->add_float_data(3.0f);  // 3 floats for dims [2]
    onnx_verdict v = check_saved(m, t);
    REQUIRE(v.checker);
    CHECK(v.checker->find("w") != std::string::npos);
}

TEST_CASE("external data inside the package is followed; outside it, the checker never runs") {
    test::temp_dir t;
    onnx::ModelProto m = test::tiny_model();
    test::write(t / "model.onnx_data", std::string(8, '\0'));
    make_external(m.mutable_graph()->mutable_initializer(0), "model.onnx_data", 0, 8);
    onnx_verdict ok = check_saved(m, t);
    CHECK(ok.external_data.empty());
    REQUIRE(ok.checker);
    CHECK(ok.checker->empty());

    test::temp_dir u;
    make_external(m.mutable_graph()->mutable_initializer(0), "../outside.bin", 0, 8);
    onnx_verdict escaped = check_saved(m, u);
    CHECK_FALSE(escaped.external_data.empty());
    CHECK_FALSE(escaped.checker);

    test::temp_dir w;
    test::write(w / "model.onnx_data", std::string(4, '\0'));  // 4 bytes for 2 floats
    make_external(m.mutable_graph()->mutable_initializer(0), "model.onnx_data", 0, -1);
    onnx_verdict short_file = check_saved(m, w);
    CHECK(short_file.external_data.empty());
    REQUIRE(short_file.checker);
    CHECK_FALSE(short_file.checker->empty());
}

TEST_CASE("typed value counts follow the shape; complex types count two values per element") {
    onnx::TensorProto t;
    t.set_data_type(onnx::TensorProto_DataType_FLOAT);
    t.add_dims(3);
    t.add_dims(4);
    CHECK(detail::typed_value_count(t) == 12u);
    t.set_data_type(onnx::TensorProto_DataType_COMPLEX64);
    CHECK(detail::typed_value_count(t) == 24u);
    t.add_dims(-1);
    CHECK_FALSE(detail::typed_value_count(t));
}
