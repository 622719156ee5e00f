// `modelexport inspect`: node counts per hierarchy tag and the tree / DOT / GraphML views (package/inspect.hpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/onnx/stream.hpp"
#include "modelexport/package/inspect.hpp"

#include <numeric>
#include <sstream>

using namespace modelexport;

namespace {
std::size_t total(const std::map<std::string, std::size_t>& m) {
    return std::accumulate(m.begin(), m.end(), std::size_t{0},
                           [](std::size_t s, const auto& kv) { return s + kv.second; });
}
}  // namespace

TEST_CASE("without embedded tags or metadata, the tags are projected from the saved model's scope names") {
    test::temp_dir t;
    save_onnx(test::text_classifier(), t / "model.onnx");
    onnx::ModelProto m = load_onnx_light(t / "model.onnx").model;
    auto per_tag = nodes_per_tag(m, {{"model", {{"class", "BertForSequenceClassification"}}}}).nodes_per_tag;
    CHECK(total(per_tag) == 3);  // every node lands on one tag
    bool bert = false, classifier = false;
    for (const auto& [tag, n] : per_tag) {
        CHECK(tag.rfind("/BertForSequenceClassification", 0) == 0);  // rooted at the model class
        bert = bert || (tag.find("bert") != std::string::npos || tag.find("Bert") != std::string::npos);
        classifier =
            classifier || tag.find("classifier") != std::string::npos || tag.find("Classifier") != std::string::npos;
    }
    CHECK(bert);
    CHECK(classifier);
}

TEST_CASE("the metadata's node table wins over projection") {
    onnx::ModelProto m = test::text_classifier();
    nlohmann::json meta{{"nodes", {{"/bert/Cast", "/M/A"}, {"/bert/ReduceMean", "/M/A"}, {"/classifier/Mul", "/M/B"}}}};
    auto per_tag = nodes_per_tag(m, meta).nodes_per_tag;
    CHECK(per_tag == std::map<std::string, std::size_t>{{"/M/A", 2}, {"/M/B", 1}});
}

TEST_CASE("subtree counts add every level; the tree, DOT and GraphML views show them") {
    std::map<std::string, std::size_t> per_tag{{"/M", 1}, {"/M/enc/layer.0", 4}, {"/M/enc/layer.1", 5}};
    auto totals = subtree_counts(per_tag);
    CHECK(totals.at("/M") == 10);
    CHECK(totals.at("/M/enc") == 9);
    std::ostringstream tree;
    print_tree(tree, per_tag);
    CHECK(tree.str().find("layer.1 (5 nodes)") != std::string::npos);
    std::string dot = hierarchy_dot(per_tag, "a \"title\"");
    CHECK(dot.find("\"/M/enc\" -> \"/M/enc/layer.0\"") != std::string::npos);
    CHECK(dot.find("a \\\"title\\\"") != std::string::npos);
    std::string xml = hierarchy_graphml({{"/M/<a&b>", 1}});
    CHECK(xml.find("&lt;a&amp;b&gt;") != std::string::npos);
    CHECK(xml.find("<a&b>") == std::string::npos);
}

TEST_CASE("names with control characters or bad UTF-8 stay valid XML and DOT") {
    CHECK(detail::xml_escape("a\x01"
                             "b") == "a\\x01b");
    CHECK(detail::xml_escape("\xff") == "\\xff");
    CHECK(detail::dot_escape("line\nbreak") == "line\\\\x0abreak");  // \x0a as text, its backslash escaped for DOT
}

TEST_CASE("a tag with thousands of levels or a huge name is shown cut, and the output stays linear") {
    std::string deep;
    for (int i = 0; i < 20000; ++i) deep += "/m" + std::to_string(i);
    onnx::ModelProto m = test::text_classifier();
    nlohmann::json meta{{"nodes",
                         {{"/bert/Cast", deep},
                          {"/bert/ReduceMean", deep + "/x"},
                          {"/classifier/Mul", "/M/" + std::string(100000, 'n')}}}};
    shown_hierarchy shown = nodes_per_tag(m, meta);
    CHECK(shown.cut == 3);
    CHECK(total(shown.nodes_per_tag) == 3);  // the cut levels' nodes stay with their deepest shown ancestor
    for (const auto& [tag, n] : shown.nodes_per_tag) CHECK(tag.size() <= shown_depth * (shown_name_bytes + 4));
    std::ostringstream tree;
    print_tree(tree, shown.nodes_per_tag);
    CHECK(tree.str().size() < 200000);
    CHECK(tree.str().find("m63 (2 nodes)") != std::string::npos);
    CHECK(tree.str().find("m64") == std::string::npos);
    CHECK(tree.str().find(std::string(shown_name_bytes, 'n') + "...") != std::string::npos);
    CHECK(hierarchy_dot(shown.nodes_per_tag, "t").size() < 2000000);
}
