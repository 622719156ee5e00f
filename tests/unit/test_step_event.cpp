// export/step_event.hpp: the step timer's events and times.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/export/step_event.hpp"

#include <stdexcept>

using namespace modelexport;

TEST_CASE("each step starts, ends with its summary and records its time") {
    step_times times;
    std::vector<step_event> events;
    {
        step_timer timer(times, [&](const step_event& e) { events.push_back(e); });
        timer.begin("resolve", "resolving x");
        timer.end("done x");
        timer.begin("copy", "copying");
        timer.end();
    }
    REQUIRE(events.size() == 4);
    CHECK((events[0].step == "resolve" && events[0].detail == "resolving x" && !events[0].finished));
    CHECK((events[1].step == "resolve" && events[1].detail == "done x" && events[1].finished));
    REQUIRE(times.size() == 2);
    CHECK(times[1].first == "copy");
    CHECK(times[1].second >= 0.0);
}

TEST_CASE("a step left by an exception ends as failed and records no time") {
    step_times times;
    std::vector<step_event> events;
    try {
        step_timer timer(times, [&](const step_event& e) { events.push_back(e); });
        timer.begin("export", "running");
        throw std::runtime_error("boom");
    } catch (const std::runtime_error&) {}
    REQUIRE(events.size() == 2);
    CHECK((events[1].step == "export" && events[1].detail == "failed" && events[1].finished));
    CHECK(times.empty());
}

TEST_CASE("enter begins a step once, ending the one before it, whichever call comes first") {
    step_times times;
    std::vector<step_event> events;
    step_timer timer(times, [&](const step_event& e) { events.push_back(e); });
    int summaries = 0;
    auto summary = [&] { return "looked up " + std::to_string(++summaries); };
    timer.enter("export", "exporting", summary);  // nothing running: nothing ends
    REQUIRE(events.size() == 1);
    timer.end();
    timer.begin("cache", "looking up");
    timer.enter("export", "exporting", summary);
    timer.enter("export", "restoring", summary);  // running already: neither ends nor begins
    REQUIRE(events.size() == 5);
    CHECK((events[3].step == "cache" && events[3].detail == "looked up 1" && events[3].finished));
    CHECK((events[4].step == "export" && events[4].detail == "exporting"));
    CHECK(summaries == 1);
    timer.end();
}
