// The runtime check (validate/runtime.hpp) with real child processes: stand-in runtimes written as shell scripts.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/validate/runtime.hpp"

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
    for (const char* n : {"none", "auto", "onnxruntime", "transformers-js", "optimum"})
        CHECK(to_string(*parse_runtime(n)) == n);
    CHECK_FALSE(parse_runtime("tensorflow"));
}

TEST_CASE("onnxruntime: the script's last JSON line becomes the check's summary and metrics") {
    test::temp_dir t;
    runtime_check check(runtime_kind::onnxruntime,
                        stand_in(t,
                                 "echo 'some library log'\n"
                                 "echo '{\"runtime\": \"onnxruntime\", \"version\": \"1.2.3\", \"outputs\": "
                                 "{\"logits\": {\"shape\": [1, 2]}}, "
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

TEST_CASE("a runtime that fails is an error check carrying the script's own message line") {
    test::temp_dir t;
    runtime_check check(runtime_kind::onnxruntime,
                        stand_in(t,
                                 "echo 'Error: stack' >&2\necho '    at f (x.mjs:1)' >&2\necho 'ort_check: error: "
                                 "cannot load model.onnx' >&2\nexit 1\n"));
    auto r = check(t / "pkg", report_for("text-classification"));
    REQUIRE(r);
    CHECK(r->status == check_status::fail);
    CHECK(r->level == severity::error);
    CHECK(r->message.find("failed (exit status 1): cannot load model.onnx") != std::string::npos);
    CHECK(r->message.find("at f") == std::string::npos);
}

TEST_CASE("a script that says it cannot start makes its runtime unavailable, never a failed check") {
    test::temp_dir t;
    runtime_check named(runtime_kind::onnxruntime,
                        stand_in(t, "echo 'ort_check: unavailable: cannot load onnxruntime-node: gone' >&2\nexit 3\n"));
    auto r = named(t / "pkg", report_for("text-classification"));
    REQUIRE(r);
    CHECK(r->id == "runtime.onnxruntime");
    CHECK(r->status == check_status::unavailable);
    CHECK(r->message == "onnxruntime unavailable: cannot load onnxruntime-node: gone (exit status 3)");
    // Under auto every runtime is tried; none starting is a skipped warning naming each reason.
    runtime_config cfg = stand_in(t, "echo 'x: unavailable: no' >&2\nexit 3\n");
    auto automatic = runtime_check(runtime_kind::automatic, cfg)(t / "pkg", report_for("text-classification"));
    REQUIRE(automatic);
    CHECK(automatic->status == check_status::skip);
    CHECK(automatic->level == severity::warning);
    CHECK(automatic->message.find("optimum: " + cfg.python + " not found") != std::string::npos);
    CHECK(automatic->message.find("onnxruntime: ") != std::string::npos);
    CHECK(automatic->message.find("transformers-js: ") != std::string::npos);
}

TEST_CASE(
    "a script that crashes before its own verdict (an uncaught Node exception) is unavailable, quoting the Error "
    "line") {
    test::temp_dir t;
    runtime_check check(runtime_kind::onnxruntime,
                        stand_in(t,
                                 "printf 'file:///r/tasks.mjs:10\\nthrow x;\\n^\\n\\nError: tasks.json not found\\n    "
                                 "at a (b)\\n\\nNode.js v20\\n' >&2\nexit 1\n"));
    auto r = check(t / "pkg", report_for("text-classification"));
    REQUIRE(r);
    CHECK(r->status == check_status::unavailable);
    CHECK(r->message == "onnxruntime unavailable: Error: tasks.json not found (exit status 1)");
}

TEST_CASE("first_error_line: the script's line, a Python traceback's last line, a Node exception's Error line") {
    CHECK(first_error_line({"noise", "optimum_check: error: ValueError: bad"}, "optimum_check") == "ValueError: bad");
    CHECK(first_error_line({"Traceback (most recent call last):", "  File \"x.py\", line 1",
                            "ModuleNotFoundError: No module named 'optimum'"},
                           "optimum_check") == "ModuleNotFoundError: No module named 'optimum'");
    CHECK(
        first_error_line({"node:internal/errors:496", "    ErrorCaptureStackTrace(err);", "",
                          "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'x'", "    at y", "", "Node.js v20.20.2"},
                         "ort_check") == "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'x'");
    CHECK(first_error_line({"something odd", ""}, "ort_check") == "something odd");
}

TEST_CASE("transformers.js runs only for tasks with a pipeline in the task table") {
    test::temp_dir t;
    runtime_check check(runtime_kind::transformers_js,
                        stand_in(t, "echo \"{\\\"runtime\\\": \\\"transformers.js\\\", \\\"args\\\": \\\"$*\\\"}\"\n"));
    auto skipped = check(t / "pkg", report_for("semantic-segmentation"));
    REQUIRE(skipped);
    CHECK(skipped->status == check_status::skip);
    auto ran = check(t / "pkg", report_for("text-generation"));
    REQUIRE(ran);
    CHECK(ran->status == check_status::pass);
    CHECK(check.last_output()["args"].get<std::string>().find("--task text-generation") != std::string::npos);
}

TEST_CASE("transformers.js runs an encoder-decoder with tjs_seq2seq.mjs and the table's pipeline name") {
    test::temp_dir t;
    runtime_check check(runtime_kind::transformers_js, stand_in(t, "echo \"{\\\"args\\\": \\\"$*\\\"}\"\n"));
    auto flat = check(t / "pkg", report_for("automatic-speech-recognition-with-past"));
    REQUIRE(flat);
    CHECK(flat->status == check_status::pass);
    std::string args = check.last_output()["args"];
    CHECK(args.find("tjs_seq2seq.mjs") != std::string::npos);
    CHECK(args.find("--task automatic-speech-recognition --subfolder") != std::string::npos);
    validation_report hub = report_for("text2text-generation-with-past");
    hub.layout = package_layout::hub;
    REQUIRE(check(t / "pkg", hub));
    args = check.last_output()["args"];
    CHECK(args.find("--task text2text-generation") != std::string::npos);  // the pipeline's name, not the task's
    CHECK(args.find("with-past") == std::string::npos);
    CHECK(args.find("--subfolder") == std::string::npos);  // transformers.js' own default, onnx/
    // Without the cache there is no decoder_model_merged.onnx, the one file transformers.js reads: skipped, saying so.
    auto skipped = check(t / "pkg", report_for("text2text-generation"));
    REQUIRE(skipped);
    CHECK(skipped->status == check_status::skip);
    CHECK(skipped->message.find("decoder_model_merged.onnx") != std::string::npos);
}

TEST_CASE("a missing runtime: none is no check, auto a skipped warning, a named one unavailable") {
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
    CHECK(named->status == check_status::unavailable);
    CHECK(named->message == "onnxruntime unavailable: " + cfg.node + " not found");
}
