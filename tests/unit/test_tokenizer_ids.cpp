// The ids a package's tokenizer and configs can feed the model, the embedding rows its
// graph has for them (validate/tokenizer_ids.hpp), and the validator's tokenizer.ids check.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/validate/tokenizer_ids.hpp"
#include "modelexport/validator.hpp"

using namespace modelexport;

namespace {

onnx::TensorProto* add_table(onnx::GraphProto* g, const std::string& name, int rows, int width) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto_DataType_FLOAT);
    t->add_dims(rows);
    t->add_dims(width);
    for (int i = 0; i < rows * width; ++i) t->add_float_data(0.5f * static_cast<float>(i % 7));
    return t;
}

void set_int_attribute(onnx::NodeProto* n, const std::string& name, std::int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
}

/// A text classifier whose logits [batch, 2] are the mean of its token embeddings:
/// Gather(word_embeddings [rows, 2], input_ids), after a Cast of the ids when `cast`.
onnx::ModelProto embedding_classifier(int rows, bool cast = false) {
    onnx::ModelProto m = test::empty_model();
    auto* g = m.mutable_graph();
    test::add_tensor_value(g->add_input(), "input_ids", onnx::TensorProto_DataType_INT64, "batch_size", 0);
    test::add_tensor_value(g->add_input(), "attention_mask", onnx::TensorProto_DataType_INT64, "batch_size", 0);
    test::add_tensor_value(g->add_output(), "logits", onnx::TensorProto_DataType_FLOAT, "batch_size", 2);
    add_table(g, "embeddings.word_embeddings.weight", rows, 2);
    std::string ids = "input_ids";
    if (cast) {
        set_int_attribute(test::add_node(g, "/embeddings/Cast", "Cast", {"input_ids"}, "ids32"), "to",
                          onnx::TensorProto_DataType_INT32);
        ids = "ids32";
    }
    test::add_node(g, "/embeddings/Gather", "Gather", {"embeddings.word_embeddings.weight", ids}, "e");
    auto* mean = test::add_node(g, "/pool/ReduceMean", "ReduceMean", {"e"}, "logits");
    auto* axes = mean->add_attribute();
    axes->set_name("axes");
    axes->set_type(onnx::AttributeProto::INTS);
    axes->add_ints(1);
    set_int_attribute(mean, "keepdims", 0);
    return m;
}

/// A package of embedding_classifier(rows) with a WordPiece tokenizer.json of `pieces` pieces.
fs::path package(const fs::path& dir, int rows, int pieces, bool cast = false) {
    test::prebuilt_source(dir, embedding_classifier(rows, cast));
    json vocab = json::object();
    for (int i = 0; i < pieces; ++i) vocab["piece" + std::to_string(i)] = i;
    test::write(dir / "tokenizer.json",
                json{{"version", "1.0"}, {"model", {{"type", "WordPiece"}, {"vocab", vocab}}}}.dump());
    fs::remove(dir / "vocab.txt");
    return dir;
}

const check_result& ids_check(const validation_report& r) {
    const check_result* c = r.find("tokenizer.ids");
    REQUIRE(c != nullptr);
    return *c;
}

std::int64_t largest(const std::vector<token_id>& ids) {
    std::int64_t m = -1;
    for (const auto& t : ids) m = std::max(m, t.id);
    return m;
}

}  // namespace

TEST_CASE("tokenizer.json: the largest id of a {piece: id} vocabulary, of a Unigram list and of added_tokens") {
    test::temp_dir t;
    test::write(t / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "zz": 7, "b": 3}},
        "added_tokens": [{"id": 8, "content": "<s>"}, {"id": 9, "content": "</s>"}]})");
    std::vector<token_id> ids = tokenizer_ids(t.path());
    REQUIRE(ids.size() == 2);
    CHECK(ids[0].id == 7);
    CHECK(ids[0].describe() == "token 'zz' has id 7");
    CHECK(ids[1].id == 9);
    CHECK(ids[1].token == "</s>");

    // Unigram ids are list positions: a piece listed twice still takes an id.
    test::write(t / "tokenizer.json",
                R"({"model": {"type": "Unigram", "vocab": [["<pad>", 0.0], ["\u2581a", -1.0], ["\u2581a", -2.0]]}})");
    ids = tokenizer_ids(t.path());
    REQUIRE(ids.size() == 1);
    CHECK(ids[0].id == 2);
    CHECK(ids[0].token == "\u2581a");
    CHECK(ids[0].file == (t / "tokenizer.json").string());
}

TEST_CASE(
    "without tokenizer.json: vocab.txt's lines, vocab.json's ids; added_tokens.json and added_tokens_decoder always") {
    test::temp_dir t;
    test::write(t / "vocab.txt", "[PAD]\r\n[UNK]\nhello\rworld");  // Python's text mode: four lines
    std::vector<token_id> ids = tokenizer_ids(t.path());
    REQUIRE(ids.size() == 1);
    CHECK(ids[0].id == 3);
    CHECK(ids[0].token == "world");
    CHECK(ids[0].file == (t / "vocab.txt").string());

    fs::remove(t / "vocab.txt");
    test::write(t / "vocab.json", R"({"<|endoftext|>": 5, "a": 0})");
    test::write(t / "added_tokens.json", R"({"<|en|>": 6, "<|fr|>": 7})");
    test::write(t / "tokenizer_config.json",
                R"({"added_tokens_decoder": {"6": {"content": "<|en|>"}, "12": {"content": "<x>"}}})");
    ids = tokenizer_ids(t.path());
    REQUIRE(ids.size() == 3);
    CHECK(ids[0].id == 5);
    CHECK(ids[1].id == 7);
    CHECK(ids[1].file == (t / "added_tokens.json").string());
    CHECK(ids[2].id == 12);
    CHECK(ids[2].describe() == "token '<x>' has id 12");

    // tokenizer.json wins over the slow tokenizers' vocabularies.
    test::write(t / "tokenizer.json", R"({"model": {"vocab": {"a": 0, "b": 1}}})");
    CHECK(largest(tokenizer_ids(t.path())) == 12);
    fs::remove(t / "tokenizer_config.json");
    fs::remove(t / "added_tokens.json");
    CHECK(largest(tokenizer_ids(t.path())) == 1);
}

TEST_CASE("a malformed tokenizer file is invalid input naming it") {
    test::temp_dir t;
    test::write(t / "tokenizer.json", R"({"model": {"vocab": {"a": "zero"}}})");
    CHECK_THROWS_WITH_AS(tokenizer_ids(t.path()),
                         ((t / "tokenizer.json").string() + ": model.vocab entry 'a' is not an integer id").c_str(),
                         invalid_input);
    test::write(t / "tokenizer.json", R"({"model": {"vocab": {}}, "added_tokens": [{"content": "<s>"}]})");
    CHECK_THROWS_AS(tokenizer_ids(t.path()), invalid_input);
    test::write(t / "tokenizer.json", R"({"model": {"vocab": {"a": 0, "a": 1}}})");
    CHECK_THROWS_WITH_AS(tokenizer_ids(t.path()), doctest::Contains("duplicate key"), invalid_input);
    fs::remove(t / "tokenizer.json");
    test::write(t / "tokenizer_config.json", R"({"added_tokens_decoder": {"x1": {"content": "<s>"}}})");
    CHECK_THROWS_WITH_AS(tokenizer_ids(t.path()), doctest::Contains("added_tokens_decoder key 'x1' is not an id"),
                         invalid_input);
}

TEST_CASE("special ids: ints and lists of ints of each key, forced_decoder_ids; null and negative ids are not ids") {
    json config =
        json::parse(R"({"pad_token_id": null, "bos_token_id": -1, "eos_token_id": [2, 50], "decoder_start_token_id": 4,
        "forced_bos_token_id": 5, "forced_eos_token_id": 6, "forced_decoder_ids": [[1, 70], [2, null]], "vocab_size": 99})");
    std::vector<token_id> ids = special_ids(config, "generation_config.json");
    std::vector<std::int64_t> values;
    for (const auto& t : ids) values.push_back(t.id);
    CHECK(values == std::vector<std::int64_t>{2, 50, 4, 5, 6, 70});
    CHECK(ids[1].describe() == "eos_token_id is 50");
    CHECK(ids[5].key == "forced_decoder_ids");
    CHECK(ids[5].file == "generation_config.json");

    // JSON's unsigned range past int64 would wrap to a negative id that seems to fit.
    CHECK_THROWS_WITH_AS(special_ids(json::parse(R"({"eos_token_id": 18446744073709551615})"), "config.json"),
                         "config.json: eos_token_id is 18446744073709551615, past any embedding", invalid_input);
}

TEST_CASE("the embedding rows: the Gather of input_ids, through a Cast, in an If branch; none without a table") {
    onnx::ModelProto m = embedding_classifier(30);
    id_embedding e = find_id_embedding(m.graph());
    CHECK(e.input == "input_ids");
    REQUIRE(e.rows);
    CHECK(*e.rows == 30);

    e = find_id_embedding(embedding_classifier(31, true).graph());
    REQUIRE(e.rows);
    CHECK(*e.rows == 31);

    // A merged decoder: the Gather sits in a branch and reads the outer graph's table; Reshape
    // and Unsqueeze of the ids are followed, and of two tables the smaller counts.
    onnx::ModelProto merged = test::empty_model();
    auto* g = merged.mutable_graph();
    test::add_tensor_value(g->add_input(), "decoder_input_ids", onnx::TensorProto_DataType_INT64, "batch_size", 0);
    add_table(g, "shared.weight", 40, 2);
    add_table(g, "other.weight", 35, 2);
    test::add_node(g, "/Reshape", "Reshape", {"decoder_input_ids", "shape"}, "flat");
    auto* branch_if = test::add_node(g, "/If", "If", {"use_cache_branch"}, "out");
    auto* branch = branch_if->add_attribute();
    branch->set_name("then_branch");
    branch->set_type(onnx::AttributeProto::GRAPH);
    auto* sub = branch->mutable_g();
    test::add_node(sub, "/Unsqueeze", "Unsqueeze", {"flat", "axes"}, "u");
    test::add_node(sub, "/embed/Gather", "Gather", {"shared.weight", "u"}, "h");
    test::add_node(sub, "/other/Gather", "Gather", {"other.weight", "flat"}, "h2");
    test::add_node(sub, "/pos/Gather", "Gather", {"other.weight", "position_ids"}, "h3");  // not an id
    e = find_id_embedding(merged.graph());
    CHECK(e.input == "decoder_input_ids");
    REQUIRE(e.rows);
    CHECK(*e.rows == 35);

    // The ids reach the Gather as its data, not its indices; or the table is computed: no rows.
    onnx::ModelProto odd = embedding_classifier(30);
    odd.mutable_graph()->mutable_node(0)->set_input(0, "computed");
    e = find_id_embedding(odd.graph());
    CHECK(e.input == "input_ids");
    CHECK_FALSE(e.rows);

    CHECK(find_id_embedding(test::tiny_model().graph()).input.empty());
}

TEST_CASE("the embedding rows: ids selected before the table (MusicGen's codebooks); ids that index nothing") {
    onnx::ModelProto m = test::empty_model();
    auto* g = m.mutable_graph();
    test::add_tensor_value(g->add_input(), "input_ids", onnx::TensorProto_DataType_INT64, "batch_size", 0);
    add_table(g, "embed_tokens.0.weight", 65, 2);
    test::add_node(g, "/Reshape", "Reshape", {"input_ids", "shape"}, "codes");
    test::add_node(g, "/Gather", "Gather", {"codes", "codebook"}, "row");  // one codebook's ids
    test::add_node(g, "/Slice", "Slice", {"row", "starts", "ends"}, "part");
    test::add_node(g, "/embed_tokens.0/Gather", "Gather", {"embed_tokens.0.weight", "part"}, "h");
    id_embedding e = find_id_embedding(m.graph());
    CHECK(e.indexes);
    REQUIRE(e.rows);
    CHECK(*e.rows == 65);

    // The delay-pattern builder: ids in, ids out, no table indexed.
    onnx::ModelProto plain = test::empty_model();
    g = plain.mutable_graph();
    test::add_tensor_value(g->add_input(), "input_ids", onnx::TensorProto_DataType_INT64, "batch_size", 0);
    test::add_node(g, "/Where", "Where", {"mask", "input_ids", "pad"}, "edited");
    e = find_id_embedding(plain.graph());
    CHECK(e.input == "input_ids");
    CHECK_FALSE(e.indexes);
    CHECK_FALSE(e.rows);
}

TEST_CASE("config_vocab_size: a nested decoder's, decoder_vocab_size, else vocab_size") {
    json nested = json::parse(R"({"vocab_size": 10, "encoder": {"vocab_size": 20}, "decoder": {"vocab_size": 30}})");
    CHECK(config_vocab_size(nested, true, false).size == 30);
    CHECK(config_vocab_size(nested, true, false).key == "decoder.vocab_size");
    CHECK(config_vocab_size(nested, false, true).size == 20);
    CHECK(config_vocab_size(nested, false, false).size == 10);
    CHECK(config_vocab_size(json::parse(R"({"vocab_size": 10, "decoder_vocab_size": 12})"), true, false).size == 12);
    CHECK(config_vocab_size(json::parse(R"({"vocab_size": null})"), false, false).size == -1);
}

TEST_CASE("validate: a tokenizer with one piece more than the embedding rows fails tokenizer.ids, a warning") {
    test::temp_dir t;
    fs::path pkg = package(t / "pkg", 30, 30, true);
    validation_report r = validate_package(pkg);
    CHECK(ids_check(r).status == check_status::pass);
    CHECK(ids_check(r).message == "largest id 29 (tokenizer.json) fits model.onnx 30 rows");
    CHECK(r.ok(true));

    pkg = package(t / "pkg", 30, 31);
    r = validate_package(pkg);
    const check_result& c = ids_check(r);
    CHECK(c.status == check_status::fail);
    CHECK(c.level == severity::warning);
    CHECK(c.message ==
          (pkg / "tokenizer.json").string() +
              ": token 'piece30' has id 30 but the model's embedding (model.onnx, Gather of input_ids) has 30 rows");
    CHECK(r.ok(false));
    CHECK_FALSE(r.ok(true));
}

TEST_CASE(
    "validate: a special id past the rows fails; config.json's vocab_size stands in for a graph without the Gather") {
    test::temp_dir t;
    fs::path pkg = package(t / "pkg", 30, 20);
    test::write(pkg / "generation_config.json", R"({"eos_token_id": [1, 30]})");
    validation_report r = validate_package(pkg);
    CHECK(ids_check(r).message ==
          (pkg / "generation_config.json").string() +
              ": eos_token_id is 30 but the model's embedding (model.onnx, Gather of input_ids) has 30 rows");

    fs::remove(pkg / "generation_config.json");
    test::prebuilt_source(pkg);  // the mean of the ids: no embedding table
    test::write(pkg / "tokenizer.json", R"({"model": {"vocab": {"a": 0, "b": 19}}})");
    r = validate_package(pkg);
    CHECK(ids_check(r).status == check_status::skip);
    CHECK(ids_check(r).message.find("not run: no Gather of the ids") != std::string::npos);
    CHECK(r.ok(true));

    test::write(pkg / "config.json",
                R"({"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 19,
        "id2label": {"0": "NEG", "1": "POS"}})");
    r = validate_package(pkg);
    CHECK(ids_check(r).message ==
          (pkg / "tokenizer.json").string() +
              ": token 'b' has id 19 but the model's embedding (config.json vocab_size, for model.onnx) has 19 rows");

    test::write(pkg / "tokenizer.json", R"({"model": {"vocab": {"a": 0, "b": "x"}}})");
    r = validate_package(pkg);
    CHECK(ids_check(r).status == check_status::fail);
    CHECK(ids_check(r).message == (pkg / "tokenizer.json").string() + ": model.vocab entry 'b' is not an integer id");
}

TEST_CASE("validate: a package whose graph takes no ids has no tokenizer.ids check") {
    test::temp_dir t;
    fs::path pkg = test::prebuilt_source(t / "pkg", test::tiny_model());
    CHECK(validate_package(pkg).find("tokenizer.ids") == nullptr);
}
