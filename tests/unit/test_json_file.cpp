#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/detail/json_file.hpp"

using namespace modelexport;

TEST_CASE("a 100 000-deep array is an error, not a stack overflow") {
    std::string deep(100000, '[');
    deep += std::string(100000, ']');
    CHECK_THROWS_WITH_AS(parse_json_text(deep, "config.json"), "config.json: nesting deeper than 64 levels",
                         invalid_input);
}

TEST_CASE("nesting up to the limit is accepted") {
    std::string ok = std::string(64, '[') + std::string(64, ']');
    CHECK(parse_json_text(ok, "x.json").is_array());
}

TEST_CASE("duplicate keys are refused, at any depth") {
    CHECK_THROWS_WITH_AS(parse_json_text(R"({"a": 1, "a": 2})", "c.json"), "c.json: duplicate key \"a\"",
                         invalid_input);
    CHECK_THROWS_AS(parse_json_text(R"({"x": {"b": 1, "b": 1}})", "c.json"), invalid_input);
    CHECK_NOTHROW(parse_json_text(R"({"x": {"b": 1}, "y": {"b": 1}})", "c.json"));
}

TEST_CASE("invalid UTF-8, truncation and garbage name the file and the byte") {
    std::string bad_utf8 = "{\"a\": \"\xff\xfe\"}";
    CHECK_THROWS_AS(parse_json_text(bad_utf8, "c.json"), invalid_input);
    try {
        parse_json_text("{\"a\": ", "dir/config.json");
        FAIL("expected an error");
    } catch (const invalid_input& e) {
        CHECK(std::string(e.what()).rfind("dir/config.json: invalid JSON at byte", 0) == 0);
        CHECK(e.code() == exit_code::invalid_input);
    }
}

TEST_CASE("what Python's json rejects is rejected: a byte order mark, NUL bytes") {
    CHECK_THROWS_WITH_AS(parse_json_text("\xef\xbb\xbf{}", "c.json"),
                         "c.json: starts with a UTF-8 byte order mark (Python's json refuses it)", invalid_input);
    // nlohmann/json alone would stop at the NUL and accept the object before it.
    CHECK_THROWS_WITH_AS(parse_json_text(std::string("{}\0garbage", 10), "c.json"),
                         "c.json: invalid JSON at byte 3: a NUL byte", invalid_input);
    CHECK_THROWS_AS(parse_json_text("NaN", "c.json"), invalid_input);  // Python accepts; refused on purpose
}

TEST_CASE("lone surrogate escapes are accepted as Python's json accepts them") {
    CHECK(parse_json_text(R"({"a": "\ud800"})", "c.json")["a"] == "\xef\xbf\xbd");
    CHECK(parse_json_text(R"({"a": "x\udc00\ud800"})", "c.json")["a"] == "x\xef\xbf\xbd\xef\xbf\xbd");
    CHECK(parse_json_text(R"({"a": "\ud83d\ude00"})", "c.json")["a"] == "\xf0\x9f\x98\x80");  // a pair is untouched
    CHECK(parse_json_text(R"({"a": "\\ud800"})", "c.json")["a"] == "\\ud800");  // an escaped backslash, not an escape
    CHECK(parse_json_text(R"({"\ud800": 1})", "c.json").contains("\xef\xbf\xbd"));
    CHECK_THROWS_AS(parse_json_text(R"({"a": "\ud8"})", "c.json"), invalid_input);
    CHECK(detail::replace_lone_surrogates(R"(["\ud800", 1])").size() == std::string(R"(["\ud800", 1])").size());
}

TEST_CASE("read_json_object refuses non-objects, empty and oversized files") {
    test::temp_dir t;
    test::write(t / "array.json", "[1, 2]");
    test::write(t / "empty.json", "");
    test::write(t / "big.json", "{\"a\": \"" + std::string(2000, 'x') + "\"}");
    CHECK_THROWS_WITH_AS(read_json_object(t / "array.json"),
                         ((t / "array.json").string() + ": expected a JSON object, found array").c_str(),
                         invalid_input);
    CHECK_THROWS_AS(read_json_object(t / "empty.json"), invalid_input);
    CHECK_THROWS_AS(read_json_object(t / "big.json", {1000, 64}), invalid_input);
    CHECK_THROWS_AS(read_json_object(t / "missing.json"), io_error);
}

TEST_CASE("canonical text is sorted, indented and ends with a newline") {
    CHECK(to_canonical_text(json{{"b", 1}, {"a", 2}}) == "{\n  \"a\": 2,\n  \"b\": 1\n}\n");
}

TEST_CASE("printable escapes control characters and bytes that are not UTF-8, and nothing else") {
    CHECK(printable("acme/x\x1b[2J\n\r\t") == "acme/x\\x1b[2J\\x0a\\x0d\\x09");
    CHECK(printable(std::string("a\0b", 3)) == "a\\x00b");
    CHECK(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    CHECK(printable("\xff\xfe") == "\\xff\\xfe");
    CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");           // overlong '/'
    CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // surrogate
    CHECK(printable("\xc2\x9b") == "\\xc2\\x9b");           // C1 control (CSI)
    CHECK(printable("\xe2\x82") == "\\xe2\\x82");           // truncated sequence
    CHECK(printable(printable("x\x01\xff")) == printable("x\x01\xff"));
}

TEST_CASE("export_metadata.json readers refuse a damaged file as invalid input naming it") {
    test::temp_dir t;
    const std::string good = R"({"files": {"config.json": {"size": 2, "sha256": "ab", "role": "config"}},
                                 "model": {"task": "fill-mask"}, "nodes": {"n": "/M"}})";
    test::write(t / "export_metadata.json", good);
    CHECK_NOTHROW(read_export_metadata(t / "export_metadata.json"));
    for (const char* bad :
         {R"({"files": {"config.json": 5}, "model": {}})",
          R"({"files": {"a": {"size": "2", "sha256": "x", "role": "r"}}, "model": {}})", R"({"model": {}})",
          R"({"files": {}, "model": "x"})", R"({"files": {}})", R"({"files": {}, "model": {"task": 1}})",
          R"({"files": {}, "model": {}, "nodes": {"n": 1}})"}) {
        CAPTURE(bad);
        test::write(t / "export_metadata.json", bad);
        try {
            read_export_metadata(t / "export_metadata.json");
            FAIL("accepted");
        } catch (const invalid_input& e) {
            CHECK(std::string(e.what()).find((t / "export_metadata.json").string() + ": malformed") == 0);
        }
    }
}

TEST_CASE("id2label keys are what Python's int() reads, as transformers reads them") {
    for (const char* ok : {"0", "12", " 3 ", "+4", "-1", "1_000"}) CHECK(is_python_int(ok));
    for (const char* bad : {"", " ", "abc", "1.0", "0x1", "_1", "1_", "1__0", "+", "1 2"})
        CHECK_FALSE(is_python_int(bad));
    CHECK(config_problem({{"model_type", "bert"}, {"id2label", {{"0", "N"}, {"1", "P"}}}}).empty());
    CHECK(config_problem({{"model_type", "bert"}, {"id2label", {{"0", "N"}, {"abc", "P"}}}}) ==
          "id2label key 'abc' is not an integer (transformers reads every key with int())");
}
