// package/metadata.hpp: the reproducible timestamp and ISO 8601 formatting.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/package/metadata.hpp"

using namespace modelexport;

TEST_CASE("SOURCE_DATE_EPOCH: decimal seconds up to the year 9999, nothing else") {
    CHECK(parse_source_date_epoch("0") == 0);
    CHECK(parse_source_date_epoch("1700000000") == 1700000000);
    CHECK(parse_source_date_epoch("253402300799") == max_export_seconds);
    for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1.5", "abc", "253402300800", "99999999999999999999"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_source_date_epoch(bad), usage_error);
    }
}

TEST_CASE("the export time is SOURCE_DATE_EPOCH when set, else fixed at 1970") {
    ::unsetenv("SOURCE_DATE_EPOCH");
    CHECK(choose_export_time().origin == "fixed");
    CHECK(iso8601(choose_export_time().seconds) == "1970-01-01T00:00:00Z");
    ::setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
    CHECK(choose_export_time().origin == "SOURCE_DATE_EPOCH");
    CHECK(iso8601(choose_export_time().seconds) == "2023-11-14T22:13:20Z");
    ::unsetenv("SOURCE_DATE_EPOCH");
}
