// package/verify.hpp: files against the hashes export_metadata.json records, on an exported package.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/export.hpp"
#include "modelexport/package/verify.hpp"

using namespace modelexport;

TEST_CASE("an exported package verifies; changed, missing and added files are named") {
    test::temp_dir t;
    export_options opt;
    opt.source = test::prebuilt_source(t / "src").string();
    opt.output = t / "pkg";
    export_package(opt);
    CHECK(verify_package(t / "pkg").empty());
    test::write(t / "pkg" / "vocab.txt", "edited\n");
    fs::remove(t / "pkg" / "tokenizer.json");
    test::write(t / "pkg" / "merges.txt", "new\n");
    std::map<std::string, std::string> kinds;
    for (const auto& p : verify_package(t / "pkg")) kinds[p.file] = p.kind;
    CHECK(kinds == std::map<std::string, std::string>{
                       {"vocab.txt", "changed"}, {"tokenizer.json", "missing"}, {"merges.txt", "added"}});
    fs::remove(t / "pkg" / "export_metadata.json");
    CHECK_THROWS_AS(verify_package(t / "pkg"), invalid_input);
}
