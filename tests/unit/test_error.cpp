// Errors and the UTF-8 decoder printable() and valid_utf8() share (error.hpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/error.hpp"

using namespace modelexport;

TEST_CASE("errors carry their exit code, file and hint") {
    invalid_input e("config.json", "is not JSON", "fix it");
    CHECK(e.code() == exit_code::invalid_input);
    CHECK(e.file() == "config.json");
    CHECK(std::string(e.what()) == "config.json: is not JSON");
    CHECK(e.hint() == "fix it");
}

TEST_CASE("UTF-8: well-formed sequences only (RFC 3629)") {
    CHECK(valid_utf8("plain \t\n text"));
    CHECK(valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    CHECK_FALSE(valid_utf8("\xc0\xaf"));          // overlong
    CHECK_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
    CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
    CHECK_FALSE(valid_utf8("\xe2\x82"));          // truncated
    CHECK(utf8_sequence_length("\xe2\x82\xac", 0) == 3);
}

TEST_CASE("printable escapes controls and malformed bytes, keeps text") {
    CHECK(printable("a\nb") == "a\\x0ab");
    CHECK(printable("\x1b[31m") == "\\x1b[31m");
    CHECK(printable("\xc2\x85") == "\\xc2\\x85");  // C1 control
    CHECK(printable("caf\xc3\xa9") == "caf\xc3\xa9");
    CHECK(printable("\xff") == "\\xff");
}
