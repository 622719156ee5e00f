// The runtime check (runtime.hpp) with real child processes: stand-in runtimes written as shell scripts.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/runtime.hpp"

using namespace modelexport;

namespace {

/// A directory laid out as tools/runtime with its npm packages, and a "node" that runs `body`.
runtime_config stand_in(const test::temp_dir& t, const std::string& body) {
    runtime_config cfg;
    cfg.scripts_dir = t / "runtime";
    fs::create_directories(cfg.scripts_dir / "node_modules" / "onnxruntime-node");
    fs::create_directories(cfg.scripts_dir / "node_modules" / "@huggingface" / "transformers");
    test::write(t / "node", "#!/bin/sh\n" + body);
    fs::permissions(t / "node", fs::perms::owner_all);
    cfg.node = (t / "node").string();
    cfg.python = (t / "no-such-python").string();
    cfg.timeout = std::chrono::seconds(30);
    return cfg;
}

validation_report report_for(const std::string& task) {
    validation_report r;
    r.task = task;
    r.optimum_class = "ORTModelForSequenceClassification";
    return r;
}

}  // namespace

TEST_CASE("runtime names parse both ways") {
    for (const char* n : {"none", "auto", "onnxruntime", "transformers-js", "optimum"}) CHECK(to_string(*parse_runtime(n)) == n);
    CHECK_FALSE(parse_runtime("tensorflow"));
}

TEST_CASE("onnxruntime: the script's last JSON line becomes the check's summary and metrics") {
    test::temp_dir t;
    runtime_check check(runtime_kind::onnxruntime,
                        stand_in(t, "echo 'some library log'\n"
                                    "echo '{\"runtime\": \"onnxruntime\", \"version\": \"1.2.3\", \"outputs\": {\"logits\": {\"shape\": [1, 2]}}, "
                                    "\"latency_ms\": 1.5, \"peak_rss_mb\": 40}'\n"));
    auto r = check(t / "pkg", report_for("text-classification"));
    REQUIRE(r);
    CHECK(r->id == "runtime.onnxruntime");
    CHECK(r->status == check_status::pass);
    CHECK(r->message.find("onnxruntime 1.2.3; outputs logits[1,2]") != std::string::npos);
    CHECK(r->metrics["latency_ms"] == 1.5);
    CHECK(r->metrics["peak_rss_mb"] == 40);
    CHECK(check.last_output()["version"] == "1.2.3");
}

TEST_CASE("a runtime that fails is an error check carrying its stderr") {
    test::temp_dir t;
    runtime_check check(runtime_kind::onnxruntime, stand_in(t, "echo 'cannot load model.onnx' >&2\nexit 1\n"));
    auto r = check(t / "pkg", report_for("text-classification"));
    REQUIRE(r);
    CHECK(r->status == check_status::fail);
    CHECK(r->level == severity::error);
    CHECK(r->message.find("cannot load model.onnx") != std::string::npos);
}

TEST_CASE("transformers.js runs only for tasks with a pipeline in the task table") {
    test::temp_dir t;
    runtime_check check(runtime_kind::transformers_js, stand_in(t, "echo \"{\\\"runtime\\\": \\\"transformers.js\\\", \\\"args\\\": \\\"$*\\\"}\"\n"));
    auto skipped = check(t / "pkg", report_for("semantic-segmentation"));
    REQUIRE(skipped);
    CHECK(skipped->status == check_status::skip);
    auto ran = check(t / "pkg", report_for("text-generation"));
    REQUIRE(ran);
    CHECK(ran->status == check_status::pass);
    CHECK(check.last_output()["args"].get<std::string>().find("--task text-generation") != std::string::npos);
}

TEST_CASE("a missing runtime: none is no check, auto a skipped warning, a named one an error") {
    test::temp_dir t;
    runtime_config cfg;
    cfg.scripts_dir = t / "empty";
    cfg.python = (t / "no-such-python").string();
    cfg.node = (t / "no-such-node").string();
    CHECK_FALSE(runtime_check(runtime_kind::none, cfg)(t / "pkg", report_for("fill-mask")));
    auto automatic = runtime_check(runtime_kind::automatic, cfg)(t / "pkg", report_for("fill-mask"));
    REQUIRE(automatic);
    CHECK(automatic->status == check_status::skip);
    auto named = runtime_check(runtime_kind::onnxruntime, cfg)(t / "pkg", report_for("fill-mask"));
    REQUIRE(named);
    CHECK(named->status == check_status::fail);
}
