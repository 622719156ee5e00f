// Make-style depfiles as ninja reads them (export/depfile.hpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/export/depfile.hpp"

using namespace modelexport;

TEST_CASE("escaping: spaces, '#', ':' and '$' as ninja's depfile parser reads them") {
    CHECK(depfile_escape("/src/model.onnx") == "/src/model.onnx");
    CHECK(depfile_escape("/my models/a b") == "/my\\ models/a\\ b");
    CHECK(depfile_escape("/x/#1") == "/x/\\#1");
    CHECK(depfile_escape("/c:/d") == "/c\\:/d");
    CHECK(depfile_escape("/cost$5") == "/cost$$5");
    CHECK(depfile_escape("/caf\xc3\xa9") == "/caf\xc3\xa9");  // UTF-8 bytes pass as they are
}

TEST_CASE("backslashes stand for themselves, doubled only right before a space") {
    CHECK(depfile_escape("/a\\b") == "/a\\b");
    CHECK(depfile_escape("/a\\ b") == "/a\\\\\\ b");  // one backslash + space -> three backslashes + space
    CHECK(depfile_escape("/a\\\\") == "/a\\\\");      // an even run at the end is fine
}

TEST_CASE("names the syntax cannot express are refused, naming the file") {
    for (const char* bad : {"/a\nb", "/a\tb", "/a;b", "/a|b", "/a*b", "/a\"b", "/a'b", "/a`b", "/ends:", "/odd\\"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(depfile_escape(bad), usage_error);
    }
    try {
        depfile_escape("/x\ny");
        FAIL("no exception");
    } catch (const usage_error& e) {
        CHECK(std::string(e.what()).find("newline") != std::string::npos);
    }
}

TEST_CASE("the depfile lists every input after the target, one per line, and is written as a file") {
    test::temp_dir t;
    fs::path dep = t / "pkg.d";
    write_depfile(dep, "/out/pkg/model.onnx", {"/src/config.json", "/src/my model.py"});
    CHECK(test::read(dep) == "/out/pkg/model.onnx: \\\n  /src/config.json \\\n  /src/my\\ model.py\n");
    CHECK(depfile_text("t", {}) == "t:\n");
    // A refused input fails before anything is written.
    CHECK_THROWS_AS(write_depfile(t / "other.d", "t", {"/a\nb"}), usage_error);
    CHECK_FALSE(fs::exists(t / "other.d"));
}
