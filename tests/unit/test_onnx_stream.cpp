// The light reader (onnx_stream.hpp): the graph without the weights, on real model files.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/onnx_stream.hpp"

#include <onnx/checker.h>

using namespace modelexport;

TEST_CASE("large raw_data is skipped by offset, small stays inline, and the graph is intact") {
    test::temp_dir t;
    save_onnx(test::text_classifier(2048), t / "big.onnx");  // 8 KiB of weights: skipped
    save_onnx(test::text_classifier(2), t / "small.onnx");   // 8 bytes: inline
    light_model big = load_onnx_light(t / "big.onnx");
    REQUIRE(big.payloads.size() == 1);
    const skipped_payload& p = big.payloads.front();
    CHECK(p.tensor == "classifier.weight");
    CHECK(p.length == 2048 * 4);
    CHECK(p.offset + p.length <= fs::file_size(t / "big.onnx"));
    CHECK(payload_problem(p).empty());
    CHECK(big.model.graph().node_size() == 3);
    CHECK(big.model.graph().initializer(0).raw_data().empty());  // not read
    CHECK(load_onnx_light(t / "small.onnx").payloads.empty());
    CHECK(load_onnx_light(t / "small.onnx").model.graph().initializer(0).raw_data().size() == 8);
}

TEST_CASE("a payload that does not match its shape is a problem, not an exception") {
    skipped_payload p{"w", 0, 12, onnx::TensorProto_DataType_FLOAT, {2, 2}};
    CHECK(payload_problem(p) == "tensor 'w' holds 12 bytes but its shape needs 16");
    p.dims = {-1};
    CHECK(payload_problem(p) == "tensor 'w' has a negative dimension");
}

TEST_CASE("a truncated model, one cut inside a skipped payload, or garbage is invalid input") {
    test::temp_dir t;
    save_onnx(test::text_classifier(2048), t / "m.onnx");
    std::string bytes = test::read(t / "m.onnx");
    for (std::size_t keep : {bytes.size() - 1, bytes.size() / 2, std::size_t{3}}) {
        CAPTURE(keep);
        test::write(t / "cut.onnx", bytes.substr(0, keep));
        CHECK_THROWS_AS(load_onnx_light(t / "cut.onnx"), invalid_input);
    }
    test::write(t / "garbage.onnx", std::string(100, '\xff'));
    CHECK_THROWS_AS(load_onnx_light(t / "garbage.onnx"), invalid_input);
    CHECK_THROWS_AS(load_onnx_light(t / "missing.onnx"), error);
}
