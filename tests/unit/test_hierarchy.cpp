#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/onnx/hierarchy.hpp"

#include <set>

using namespace modelexport;

namespace {

std::vector<traced_module> bert_modules() {
    return {
        {"", "BertForSequenceClassification", false, 0},
        {"bert", "BertModel", false, 1},
        {"bert.embeddings", "BertEmbeddings", false, 2},
        {"bert.embeddings.word_embeddings", "Embedding", true, 3},
        {"bert.encoder", "BertEncoder", false, 4},
        {"bert.encoder.layer", "ModuleList", true, std::nullopt},
        {"bert.encoder.layer.0", "BertLayer", false, 5},
        {"bert.encoder.layer.0.attention", "BertAttention", false, 6},
        {"bert.encoder.layer.0.attention.self", "BertSelfAttention", false, 7},
        {"bert.encoder.layer.0.attention.self.query", "Linear", true, 8},
        {"bert.encoder.layer.1", "BertLayer", false, 9},
        {"bert.encoder.layer.1.attention", "BertAttention", false, 10},
        {"bert.encoder.layer.1.attention.self", "BertSelfAttention", false, 11},
        {"classifier", "Linear", true, 12},
    };
}

}  // namespace

TEST_CASE("scope names become dotted module paths") {
    CHECK(scope_of("/bert/encoder/layer.0/attention/self/query/MatMul") == "bert.encoder.layer.0.attention.self.query");
    CHECK(scope_of("/Constant") == "");
    CHECK_FALSE(scope_of("Gemm_3").has_value());
    CHECK_FALSE(scope_of("").has_value());
}

TEST_CASE("tags use class names, list indices and skip plain torch modules") {
    auto tags = module_tags(bert_modules(), false);
    CHECK(tags.at("") == "/BertForSequenceClassification");
    CHECK(tags.at("bert.encoder.layer.0.attention.self") ==
          "/BertForSequenceClassification/BertModel/BertEncoder/BertLayer.0/BertAttention/BertSelfAttention");
    CHECK(tags.at("bert.encoder.layer.0.attention.self.query") == tags.at("bert.encoder.layer.0.attention.self"));
    CHECK(tags.at("classifier") == "/BertForSequenceClassification");
    // Same-class siblings stay apart: modules are keyed by path, not class.
    CHECK(tags.at("bert.encoder.layer.1.attention") != tags.at("bert.encoder.layer.0.attention"));
}

TEST_CASE("--torch-module makes torch.nn leaves levels") {
    auto tags = module_tags(bert_modules(), true);
    CHECK(tags.at("bert.encoder.layer.0.attention.self.query") ==
          "/BertForSequenceClassification/BertModel/BertEncoder/BertLayer.0/BertAttention/BertSelfAttention/Linear");
    CHECK(tags.at("classifier") == "/BertForSequenceClassification/Linear");
    // Containers are never levels: BertLayer.0 sits right under BertEncoder.
    CHECK(tags.at("bert.encoder.layer") == "/BertForSequenceClassification/BertModel/BertEncoder");
}

TEST_CASE("projection: direct, parent, neighbour and root matches, all nodes tagged") {
    std::vector<node_view> nodes{
        {"/bert/embeddings/word_embeddings/Gather", "Gather", {"input_ids", "w"}, {"e"}},    // direct (leaf module)
        {"/bert/encoder/layer.0/attention/self/query/MatMul", "MatMul", {"e", "q"}, {"m"}},  // direct
        {"/bert/encoder/layer.0/attention/self/inner/Add", "Add", {"m", "c"}, {"a"}},  // parent: 'inner' was not traced
        {"", "Constant", {}, {"c"}},                                                   // neighbour: its consumer
        {"Gemm_3", "Gemm", {"a"}, {"logits"}},  // no scope, no tagged neighbour... consumer none, producer Add
        {"/Reshape", "Reshape", {"x"}, {"y"}},  // root module's own op
        {"", "Constant", {}, {"unused"}},       // nothing to borrow: root
    };
    auto p = project_hierarchy(nodes, bert_modules(), "");
    CHECK(p.matches[0] == match_kind::direct);
    CHECK(p.tags[0] == "/BertForSequenceClassification/BertModel/BertEmbeddings");
    CHECK(p.matches[1] == match_kind::direct);
    CHECK(p.matches[2] == match_kind::parent);
    CHECK(p.tags[2] == p.tags[1]);
    CHECK(p.matches[3] == match_kind::neighbour);
    CHECK(p.tags[3] == p.tags[2]);
    CHECK(p.matches[4] == match_kind::neighbour);
    CHECK(p.matches[5] == match_kind::direct);
    CHECK(p.tags[5] == "/BertForSequenceClassification");
    CHECK(p.matches[6] == match_kind::root);
    CHECK(p.coverage() == 100.0);
    CHECK(p.count(match_kind::direct) == 3);
}

TEST_CASE("Identity nodes for merged initializers are tagged by their parameter's module") {
    std::vector<node_view> nodes{{"Identity_0", "Identity", {"shared"}, {"bert.encoder.layer.1.attention.self.bias"}}};
    auto p = project_hierarchy(nodes, bert_modules(), "");
    CHECK(p.matches[0] == match_kind::direct);
    CHECK(p.tags[0].find("BertLayer.1/BertAttention/BertSelfAttention") != std::string::npos);
}

TEST_CASE("unnamed and duplicate node names get deterministic keys") {
    std::vector<node_view> nodes{
        {"", "Constant", {}, {"a"}}, {"x", "Add", {}, {}}, {"x", "Mul", {}, {}}, {"y", "Relu", {}, {}}};
    auto keys = node_keys(nodes);
    CHECK(keys == std::vector<std::string>{"Constant_0", "Add_1", "Mul_2", "y"});
}

TEST_CASE("without a trace, scope components are the levels under the model class") {
    std::vector<node_view> nodes{{"/bert/encoder/layer.0/attention/self/query/MatMul", "MatMul", {}, {}},
                                 {"/Softmax", "Softmax", {}, {}}};
    auto p = project_hierarchy(nodes, {}, "BertForSequenceClassification");
    CHECK(p.tags[0] == "/BertForSequenceClassification/bert/encoder/layer.0/attention/self/query");
    CHECK(p.tags[1] == "/BertForSequenceClassification");
    CHECK(p.coverage() == 100.0);
}

TEST_CASE("a module table without its root entry projects under the model class") {
    std::vector<traced_module> modules{{"encoder", "Encoder", false, 0}, {"encoder.layer.0", "Layer", false, 1}};
    std::vector<node_view> nodes{{"/encoder/layer.0/MatMul", "MatMul", {"x"}, {"y"}},
                                 {"/other/Add", "Add", {"y"}, {"z"}},
                                 {"", "Constant", {}, {"k"}}};
    auto p = project_hierarchy(nodes, modules, "MyModel");
    CHECK(p.tags[0] == "/MyModel/Encoder/Layer.0");
    CHECK(p.tags[1] == "/MyModel");
    CHECK(p.tags[2] == "/MyModel");
    CHECK(p.coverage() == 100.0);
}

TEST_CASE("a generated key never equals another node's name") {
    std::vector<node_view> nodes{
        {"Add_1", "Mul", {}, {"a"}}, {"", "Add", {}, {"b"}}, {"", "Add", {}, {"c"}}, {"Add_2_2", "Neg", {}, {"d"}}};
    auto keys = node_keys(nodes);
    CHECK(keys == std::vector<std::string>{"Add_1", "Add_1_1", "Add_2", "Add_2_2"});
    nodes[2].name = "";
    nodes.push_back({"", "Add", {}, {"e"}});  // index 4
    keys = node_keys(nodes);
    CHECK(std::set<std::string>(keys.begin(), keys.end()).size() == keys.size());
}
