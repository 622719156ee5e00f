// The validator's checks (validator.hpp) on real package directories.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/validator.hpp"

using namespace modelexport;

namespace {

check_status status_of(const validation_report& r, const std::string& id) {
    const check_result* c = r.find(id);
    REQUIRE_MESSAGE(c != nullptr, id);
    return c->status;
}

}  // namespace

TEST_CASE("a text classifier with tokenizer and labels passes every check, strictly") {
    test::temp_dir t;
    fs::path pkg = test::prebuilt_source(t / "pkg");
    validation_report r = validate_package(pkg);
    CHECK(r.task == "text-classification");
    CHECK(r.optimum_class == "ORTModelForSequenceClassification");
    for (const auto& c : r.checks) CHECK_MESSAGE(c.status != check_status::fail, (c.id + ": " + c.message));
    CHECK(r.ok(true));
}

TEST_CASE("missing files, a config without model_type and the wrong signature fail with their ids") {
    test::temp_dir t;
    fs::path pkg = test::prebuilt_source(t / "pkg", test::tiny_model());  // x -> y: not a classifier
    validation_report r = validate_package(pkg);
    CHECK(status_of(r, "signature.inputs") == check_status::fail);
    CHECK(status_of(r, "signature.outputs") == check_status::fail);
    CHECK_FALSE(r.ok(false));

    test::write(pkg / "config.json", R"({"architectures": ["BertForSequenceClassification"]})");
    CHECK(status_of(validate_package(pkg), "config.model_type") == check_status::fail);

    fs::remove(pkg / "model.onnx");
    CHECK(status_of(validate_package(pkg), "package.files") == check_status::fail);
}

TEST_CASE("a missing tokenizer and a label count that differs from the logits are warnings") {
    test::temp_dir t;
    fs::path pkg = test::prebuilt_source(t / "pkg");
    fs::remove(pkg / "tokenizer.json");
    fs::remove(pkg / "tokenizer_config.json");
    fs::remove(pkg / "vocab.txt");
    test::write(
        pkg / "config.json",
        R"({"architectures": ["BertForSequenceClassification"], "model_type": "bert", "id2label": {"0": "A", "1": "B", "2": "C"}})");
    validation_report r = validate_package(pkg);
    CHECK(status_of(r, "preprocessing.tokenizer") == check_status::fail);
    CHECK(status_of(r, "labels.width") == check_status::fail);
    CHECK(r.ok(false));
    CHECK_FALSE(r.ok(true));
}

TEST_CASE("a model_type transformers does not know is a warning, so --strict refuses the package") {
    test::temp_dir t;
    fs::path pkg = test::prebuilt_source(t / "pkg");
    CHECK(status_of(validate_package(pkg), "config.model_type_known") == check_status::pass);
    test::write(pkg / "config.json",
                R"({"architectures": ["BertForSequenceClassification"], "model_type": "no-such-type",
                                         "id2label": {"0": "A", "1": "B"}})");
    validation_report r = validate_package(pkg);
    CHECK(status_of(r, "config.model_type_known") == check_status::fail);
    CHECK(r.find("config.model_type_known")->message.find("\"no-such-type\" is not a model type transformers knows") !=
          std::string::npos);
    CHECK(r.ok(false));
    CHECK_FALSE(r.ok(true));
}

TEST_CASE("--task overrides architectures; an unknown task fails task.known") {
    test::temp_dir t;
    fs::path pkg = test::prebuilt_source(t / "pkg");
    CHECK(status_of(validate_package(pkg, {"image-classification"}), "signature.inputs") == check_status::fail);
    CHECK(status_of(validate_package(pkg, {"no-such-task"}), "task.known") == check_status::fail);
}
