// package/layout.hpp: where a package keeps its ONNX files, on packages exported with the library API.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/export.hpp"
#include "modelexport/package/layout.hpp"
#include "modelexport/package/reader.hpp"
#include "modelexport/package/verify.hpp"

using namespace modelexport;

namespace {
json export_with(const test::temp_dir& t, package_layout layout, const fs::path& out) {
    export_options opt;
    opt.source = test::prebuilt_source(t / "src").string();
    opt.output = out;
    opt.layout = layout;
    return export_package(opt).metadata;
}
}  // namespace

TEST_CASE("a model file's package is its directory; a bare file name's is the current one") {
    CHECK(package_dir_of("pkg/model.onnx") == fs::path("pkg"));
    CHECK(package_dir_of("model.onnx") == fs::path("."));
}

TEST_CASE("layout_path moves model files only, and only in hub") {
    CHECK(layout_path(package_layout::hub, "model.onnx") == "onnx/model.onnx");
    CHECK(layout_path(package_layout::hub, "model.onnx_data") == "onnx/model.onnx_data");
    CHECK(layout_path(package_layout::hub, "decoder_model_merged.onnx") == "onnx/decoder_model_merged.onnx");
    CHECK(layout_path(package_layout::hub, "config.json") == "config.json");
    CHECK(layout_path(package_layout::flat, "model.onnx") == "model.onnx");
    CHECK(parse_layout("hub") == package_layout::hub);
    CHECK_THROWS_AS(parse_layout("onnx"), usage_error);
}

TEST_CASE("a hub export: onnx/model.onnx recorded by its path, found by readers, verified") {
    test::temp_dir t;
    json meta = export_with(t, package_layout::hub, t / "pkg");
    CHECK(fs::is_regular_file(t / "pkg" / "onnx" / "model.onnx"));
    CHECK_FALSE(fs::exists(t / "pkg" / "model.onnx"));
    CHECK(meta["layout"] == json{{"name", "hub"}, {"onnx_files", {"onnx/model.onnx"}}});
    CHECK(meta["files"].contains("onnx/model.onnx"));
    CHECK(find_layout(t / "pkg") == package_layout::hub);
    CHECK(package_file_path(t / "pkg", "model.onnx") == t / "pkg" / "onnx" / "model.onnx");
    CHECK(verify_package(t / "pkg").empty());
    CHECK(validate_package(t / "pkg").ok(false));
    // Without metadata the files decide.
    fs::remove(t / "pkg" / "export_metadata.json");
    CHECK(find_layout(t / "pkg") == package_layout::hub);
}

TEST_CASE("the same model at the root and under onnx/ is an error naming both") {
    test::temp_dir t;
    export_with(t, package_layout::hub, t / "pkg");
    fs::copy_file(t / "pkg" / "onnx" / "model.onnx", t / "pkg" / "model.onnx");
    CHECK_THROWS_WITH_AS(find_layout(t / "pkg"),
                         doctest::Contains(((t / "pkg" / "model.onnx").string() + ") and under onnx/ (" +
                                            (t / "pkg" / "onnx" / "model.onnx").string())
                                               .c_str()),
                         invalid_input);
    auto report = validate_package(t / "pkg");
    CHECK_FALSE(report.ok(false));
    REQUIRE(report.find("package.layout"));
    CHECK(report.find("package.layout")->status == check_status::fail);
}

TEST_CASE("re-exports switch layouts in place; a foreign file under onnx/ is not replaced") {
    test::temp_dir t;
    export_with(t, package_layout::hub, t / "pkg");
    export_with(t, package_layout::flat, t / "pkg");
    CHECK(fs::is_regular_file(t / "pkg" / "model.onnx"));
    CHECK_FALSE(fs::exists(t / "pkg" / "onnx"));
    export_with(t, package_layout::hub, t / "pkg");
    auto entries = package_entries(t / "pkg");
    CHECK(std::find(entries.begin(), entries.end(), "onnx/model.onnx") != entries.end());
    CHECK(verify_package(t / "pkg").empty());
    test::write(t / "pkg" / "onnx" / "notes.txt", "mine\n");
    CHECK_THROWS_AS(export_with(t, package_layout::flat, t / "pkg"), io_error);
    CHECK(test::read(t / "pkg" / "onnx" / "notes.txt") == "mine\n");
}
