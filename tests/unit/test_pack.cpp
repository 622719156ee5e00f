// Single-file models (package/pack.hpp): pack, unpack, byte for byte.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/package/pack.hpp"

using namespace modelexport;

namespace {

/// A package as an export leaves it: the prebuilt source and its export_metadata.json (pack carries the record).
fs::path exported_package(const fs::path& dir) {
    test::prebuilt_source(dir);
    test::write(dir / "export_metadata.json", R"({"files": {}, "model": {"task": "text-classification"}})");
    return dir;
}

}  // namespace

TEST_CASE("pack then unpack restores every file byte for byte, text and binary") {
    test::temp_dir t;
    fs::path pkg = exported_package(t / "pkg");
    test::write(pkg / "spiece.model", std::string("\x00\xff\xfe binary \x80", 13));  // not UTF-8: base64
    pack_package(pkg, t / "packed.onnx");
    unpack_model(t / "packed.onnx", t / "out");
    for (const char* name :
         {"model.onnx", "config.json", "tokenizer.json", "vocab.txt", "spiece.model", "export_metadata.json"}) {
        CAPTURE(name);
        CHECK(hash_file(t / "out" / name) == hash_file(pkg / name));
    }
}

TEST_CASE("a model that is not packed, an incomplete package, or a package with external data, is refused") {
    test::temp_dir t;
    fs::path pkg = test::prebuilt_source(t / "pkg");
    CHECK_THROWS_AS(unpack_model(pkg / "model.onnx", t / "out"), invalid_input);
    CHECK_THROWS_WITH_AS(pack_package(pkg, t / "packed.onnx"),
                         doctest::Contains("missing required file(s) export_metadata.json"), invalid_input);
    exported_package(pkg);
    test::write(pkg / "model.onnx_data", "x");
    CHECK_THROWS_WITH_AS(pack_package(pkg, t / "packed.onnx"), doctest::Contains("external data"), invalid_input);
}
