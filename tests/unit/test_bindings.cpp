// C++ bindings of a package (package/bindings.hpp): a real package exported with the prebuilt strategy.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/export.hpp"
#include "modelexport/package/bindings.hpp"

using namespace modelexport;

namespace {
fs::path exported_package(const test::temp_dir& t) {
    export_options opt;
    opt.source = test::prebuilt_source(t / "src").string();
    opt.output = t / "tiny-bert.pkg";
    return export_package(opt).package;
}
}  // namespace

TEST_CASE("the header states the package's task, signature, labels and files") {
    test::temp_dir t;
    fs::path pkg = exported_package(t);
    std::string h = bindings_header(pkg, "tiny");
    CHECK(h.find("namespace tiny {") != std::string::npos);
    CHECK(h.find("task = \"text-classification\"") != std::string::npos);
    CHECK(h.find("optimum_class = \"ORTModelForSequenceClassification\"") != std::string::npos);
    CHECK(h.find("{\"input_ids\", \"int64\", input_0_shape, 2}") != std::string::npos);
    CHECK(h.find("output_0_shape[] = {{-1, \"batch_size\"}, {2, \"\"}}") != std::string::npos);
    CHECK(h.find("id2label[] = {\n    \"NEG\",\n    \"POS\"}") != std::string::npos);
    CHECK(h.find("{\"model.onnx\", " + std::to_string(fs::file_size(pkg / "model.onnx")) + "ull, \"" +
                 hash_file(pkg / "model.onnx") + "\"}") != std::string::npos);
    CHECK_THROWS_AS(bindings_header(pkg, "class"), usage_error);  // a keyword is no namespace
}

TEST_CASE("with a files header the hashes leave the main header, which a new hash leaves unchanged") {
    test::temp_dir t;
    fs::path pkg = exported_package(t);
    std::string main = bindings_header(pkg, "tiny", false);
    std::string files = bindings_files_header(pkg, "tiny", t / "gen" / "tiny_files.hpp", t / "gen" / "tiny.hpp");
    CHECK(main.find("files[]") == std::string::npos);
    CHECK(main.find("input_0_shape") != std::string::npos);
    // The main header is the one-header text without its files[] block.
    std::string whole = bindings_header(pkg, "tiny");
    std::size_t block = whole.find("\n/// The package's files");
    REQUIRE(block != std::string::npos);
    CHECK(main == whole.substr(0, block) + "\n}  // namespace tiny\n");
    CHECK(files.find("#include \"tiny.hpp\"") != std::string::npos);
    CHECK(files.find(whole.substr(block, whole.find("};\n", block) + 3 - block)) != std::string::npos);
    CHECK(bindings_files_header(pkg, "tiny", t / "a" / "f.hpp", t / "b" / "m.hpp").find("#include \"../b/m.hpp\"") !=
          std::string::npos);
    CHECK_THROWS_AS(bindings_files_header(pkg, "tiny", t / "f.hpp", t / "m\"x.hpp"), usage_error);

    // A tokenizer edit: new hashes, the same main header.
    test::write(pkg / "vocab.txt", "[PAD]\n[UNK]\nmore\n");
    json meta = read_json_object(pkg / "export_metadata.json");
    meta["files"]["vocab.txt"]["sha256"] = hash_file(pkg / "vocab.txt");
    test::write(pkg / "export_metadata.json", meta.dump());
    CHECK(bindings_header(pkg, "tiny", false) == main);
    CHECK(bindings_files_header(pkg, "tiny", t / "gen" / "tiny_files.hpp", t / "gen" / "tiny.hpp") != files);
}

TEST_CASE("namespaces derived from directory names are always valid identifiers") {
    CHECK(namespace_for("/x/tiny-bert.pkg") == "tiny_bert_pkg");
    CHECK(namespace_for("/x/__a--b__") == "a_b");
    CHECK(namespace_for("/x/2024-model") == "model_2024_model");
    CHECK(namespace_for("/x/class") == "model_class");
    CHECK(namespace_for("/x/---") == "model");
    std::string long_name = namespace_for("/x/" + std::string(100, 'a'));
    CHECK(long_name.size() == 64);
    CHECK(long_name.substr(0, 48) == std::string(47, 'a') + "_");
}

TEST_CASE("an encoder-decoder's files get namespaces that cannot collide with the package's names") {
    CHECK(file_namespace("decoder_model_merged.onnx") == "decoder_model_merged");
    CHECK(file_namespace("encoder_model.onnx") == "encoder_model");
    CHECK(file_namespace("task.onnx") == "model_task");  // the package-level `task`
    CHECK(file_namespace("files.onnx") == "model_files");
    CHECK(file_namespace("2nd-decoder.onnx") == "model_2nd_decoder");
    CHECK(file_namespace("class.onnx") == "model_class");
}

TEST_CASE("string literals keep exact bytes; NUL needs a sized string_view") {
    CHECK(cpp_string_literal("a\"b\\c") == "\"a\\\"b\\\\c\"");
    CHECK(cpp_string_literal("\xc3\xa9"
                             "1") == "\"\\303\\2511\"");  // octal, never a greedy \x
    CHECK(cpp_string_literal("??=") == "\"\\?\\?=\"");
    CHECK(cpp_string_view(std::string("a\0b", 3)) == "std::string_view{\"a\\000b\", 3}");
}

TEST_CASE("id2label must map 0..n-1 to strings") {
    CHECK(labels_in_order({{"id2label", {{"1", "b"}, {"0", "a"}}}}, "c") == std::vector<std::string>{"a", "b"});
    CHECK(labels_in_order(nlohmann::json::object(), "c").empty());
    CHECK_THROWS_AS(labels_in_order({{"id2label", {{"01", "a"}}}}, "c"), invalid_input);
    CHECK_THROWS_AS(labels_in_order({{"id2label", {{"0", "a"}, {"2", "b"}}}}, "c"), invalid_input);
    CHECK_THROWS_AS(labels_in_order({{"id2label", {{"0", 5}}}}, "c"), invalid_input);
}

TEST_CASE("the ORT-format models' operators: parsed strictly, listed in the header, none without the file") {
    const std::string config =
        "# Generated from model/s:\n# - model.ort\nai.onnx;13;Gather,MatMul\n\ncom.microsoft;1;FusedMatMul\n";
    const auto ops = parse_ort_operators(config, "c");
    REQUIRE(ops.size() == 3);
    CHECK((ops[1].domain == "ai.onnx" && ops[1].opset == 13 && ops[1].op == "MatMul"));
    CHECK((ops[2].domain == "com.microsoft" && ops[2].opset == 1 && ops[2].op == "FusedMatMul"));
    for (const char* bad :
         {"ai.onnx;13", "ai.onnx;13;", "ai.onnx;13;Add,", "ai.onnx;013;Add", "ai.onnx;-1;Add", "ai.onnx;11,12;Add",
          ";13;Add", "ai.onnx;13;Add;Mul", "ai.onnx;13;Add Mul", "ai.onnx;13;Cast{\"inputs\": {}}",
          "!no_ops_specified_means_all_ops_are_required", "ai.onnx;13;Add\r"}) {
        CAPTURE(bad);
        CHECK_THROWS_WITH_AS(parse_ort_operators(std::string("# c\n") + bad + "\n", "ops.config"),
                             doctest::Contains("ops.config: line 2 is not"), invalid_input);
    }
    CHECK_THROWS_AS(parse_ort_operators(std::string("ai.onnx;13;A\0b\n", 15), "c"), invalid_input);

    test::temp_dir t;
    fs::path pkg = exported_package(t);
    const std::string none = bindings_header(pkg, "tiny");
    CHECK(none.find("inline constexpr std::size_t ort_required_operator_count = 0;\n") != std::string::npos);
    CHECK(none.find("ort_required_operators[]") == std::string::npos);
    test::write(pkg / "required_operators.config", config);
    const std::string h = bindings_header(pkg, "tiny");
    CHECK(h.find("struct ort_operator { std::string_view domain; int opset; std::string_view op; };") !=
          std::string::npos);
    CHECK(h.find("inline constexpr modelexport_bindings::ort_operator ort_required_operators[] = {\n    {\"ai.onnx\", "
                 "13, \"Gather\"},\n"
                 "    {\"ai.onnx\", 13, \"MatMul\"},\n    {\"com.microsoft\", 1, \"FusedMatMul\"},\n};\n"
                 "inline constexpr std::size_t ort_required_operator_count = 3;\n") != std::string::npos);
    test::write(pkg / "required_operators.config", config + "ai.onnx;14;Add,,Mul\n");
    CHECK_THROWS_WITH_AS(bindings_header(pkg, "tiny"), doctest::Contains("required_operators.config: line 6 is not"),
                         invalid_input);
    // Read as every package file is: a link to a list outside the package is refused.
    test::write(t / "outside.config", config);
    fs::remove(pkg / "required_operators.config");
    fs::create_symlink(t / "outside.config", pkg / "required_operators.config");
    CHECK_THROWS_WITH_AS(bindings_header(pkg, "tiny"), doctest::Contains("symbolic link"), invalid_input);
}
