// `modelexport plan`: the files an export will write, decided without exporting (plan.hpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/plan.hpp"

#include <algorithm>

using namespace modelexport;

namespace {
bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}
}  // namespace

TEST_CASE("a source with model.onnx plans prebuilt: the model, config, tokenizer files present, metadata last") {
    test::temp_dir t;
    fs::path src = test::prebuilt_source(t / "src");
    package_plan p = plan_package({src.string()});
    CHECK(p.how == strategy::prebuilt);
    CHECK(p.task == "text-classification");
    REQUIRE(p.files.size() >= 3);
    CHECK(p.files.front() == "model.onnx");
    CHECK(p.files.back() == "export_metadata.json");
    CHECK(has(p.files, "tokenizer.json"));
    CHECK(has(p.files, "vocab.txt"));
    CHECK_FALSE(has(p.files, "preprocessor_config.json"));  // the source has none
    CHECK_FALSE(has(p.files, "model.onnx_data"));
    CHECK(std::find(p.read.begin(), p.read.end(), src / "config.json") != p.read.end());
    nlohmann::json j = to_json(p);
    CHECK(j["strategy"] == "prebuilt");
    CHECK(j["source"]["kind"] == "local");
}

TEST_CASE("prebuilt from onnx/ takes the external data beside that model; htp never plans it") {
    test::temp_dir t;
    fs::path src = t / "src";
    test::make_text_source(src);
    fs::create_directories(src / "onnx");
    save_onnx(test::text_classifier(), src / "onnx" / "model.onnx");
    test::write(src / "onnx" / "model.onnx_data", "weights");
    CHECK(has(plan_package({src.string()}).files, "model.onnx_data"));
    plan_options htp{src.string()};
    htp.model_factory = "modeling.py:build";  // a factory makes `auto` choose htp
    package_plan p = plan_package(htp);
    CHECK(p.how == strategy::htp);
    CHECK_FALSE(has(p.files, "model.onnx_data"));
}

TEST_CASE("plan refuses what the export refuses: no config.json, a contradicting --task") {
    test::temp_dir t;
    fs::path src = test::prebuilt_source(t / "src");
    plan_options wrong{src.string()};
    wrong.task = "question-answering";
    CHECK_THROWS_AS(plan_package(wrong), usage_error);
    fs::remove(src / "config.json");
    CHECK_THROWS_AS(plan_package({src.string()}), config_missing);
    CHECK(parse_strategy("command") == strategy::command);
    CHECK(parse_strategy("auto") == strategy::automatic);
}

TEST_CASE(
    "variants: transformers.js's file names per ONNX file, ORT's operators file once, in the package file table") {
    CHECK(parse_variants("q8,fp16,ort") == std::vector<std::string>{"q8", "fp16", "ort"});
    CHECK(parse_variants("").empty());
    CHECK_THROWS_AS(parse_variants("q9"), usage_error);
    CHECK_THROWS_AS(parse_variants("q8,"), usage_error);
    CHECK_THROWS_AS(parse_variants("q8,q8"), usage_error);
    CHECK(variant_files({"model.onnx"}, {"q8", "int8", "uint8", "fp16", "q4", "q4f16"}) ==
          std::vector<std::string>{"model_quantized.onnx", "model_int8.onnx", "model_uint8.onnx", "model_fp16.onnx",
                                   "model_q4.onnx", "model_q4f16.onnx"});
    std::vector<std::string> seq2seq{"encoder_model.onnx", "decoder_model_merged.onnx"};
    CHECK(variant_files(seq2seq, {"q8", "ort"}) ==
          std::vector<std::string>{"encoder_model_quantized.onnx", "decoder_model_merged_quantized.onnx",
                                   "encoder_model.ort", "decoder_model_merged.ort", "required_operators.config"});
    for (const auto& f : variant_files(seq2seq, {"ort"})) CHECK(role_of(f) == file_role::variant);
    CHECK(layout_path(package_layout::hub, "model.ort") == "onnx/model.ort");
    CHECK(layout_path(package_layout::hub, "required_operators.config") == "onnx/required_operators.config");
    CHECK(multi_file_models(fs::temp_directory_path() / "no-such-package").empty());
}

TEST_CASE(
    "plan lists the variant files after the ONNX files, in the layout's place; a source's own model.ort is not "
    "planned") {
    test::temp_dir t;
    fs::path src = test::prebuilt_source(t / "src");
    test::write(src / "model.ort", "not ours");
    plan_options o;
    o.source = src.string();
    CHECK_FALSE(has(plan_package(o).files, "model.ort"));
    o.variants = {"q8", "ort"};
    o.layout = package_layout::hub;
    package_plan p = plan_package(o);
    REQUIRE(p.files.size() >= 5);
    CHECK(std::vector<std::string>(p.files.begin(), p.files.begin() + 4) ==
          std::vector<std::string>{"onnx/model.onnx", "onnx/model_quantized.onnx", "onnx/model.ort",
                                   "onnx/required_operators.config"});
}
