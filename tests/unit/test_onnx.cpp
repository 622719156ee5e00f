#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"
#include "test_support.hpp"

#include "modelexport/export/depfile.hpp"
#include "modelexport/onnx/hierarchy_embed.hpp"
#include "modelexport/onnx/model.hpp"
#include "modelexport/onnx/project.hpp"

#include <onnx/checker.h>

using namespace modelexport;

using test::tiny_model;

TEST_CASE("the signature names real inputs with types and symbolic dims") {
    auto m = tiny_model();
    auto sig = graph_signature(m.graph());
    REQUIRE(sig.inputs.size() == 1);
    CHECK(sig.inputs[0].name == "x");
    CHECK(sig.inputs[0].elem_type == "float32");
    CHECK(std::get<std::string>(sig.inputs[0].shape[0]) == "batch_size");
    CHECK(sig.outputs[0].fixed_dim(1) == 2);
    CHECK(to_json(sig)["outputs"][0]["shape"] == nlohmann::json::array({"batch_size", 2}));
}

TEST_CASE("embedded hierarchy tags survive a save/load round trip and pass the checker") {
    test::temp_dir t;
    auto m = tiny_model();
    onnx::checker::check_model(m);
    embed_hierarchy_tags(m, {"/Model/Layer", "/Model"});
    save_onnx(m, t / "model.onnx");
    auto back = load_onnx(t / "model.onnx");
    CHECK_NOTHROW(onnx::checker::check_model(back));
    auto tags = embedded_hierarchy_tags(back.graph());
    CHECK(tags == std::map<int, std::string>{{0, "/Model/Layer"}, {1, "/Model"}});
    // Embedding twice replaces, never duplicates.
    embed_hierarchy_tags(back, {"/Model/Other", "/Model"});
    CHECK(embedded_hierarchy_tags(back.graph()).at(0) == "/Model/Other");
    CHECK(back.graph().node(0).GetReflection()->GetUnknownFields(back.graph().node(0)).field_count() == 1);
}

namespace {
/// y = If(c) then Relu(x + w) else Neg(x): the merged seq2seq decoder's shape, every real node in a branch.
onnx::ModelProto if_model() {
    onnx::ModelProto m = test::tiny_model();
    auto* g = m.mutable_graph();
    onnx::GraphProto then_branch, else_branch;
    then_branch.set_name("then");
    test::add_node(&then_branch, "/layer/Add", "Add", {"x", "w"}, "s");
    test::add_node(&then_branch, "/Relu", "Relu", {"s"}, "y_then");
    test::add_tensor_value(then_branch.add_output(), "y_then", onnx::TensorProto_DataType_FLOAT, "batch_size", 2);
    else_branch.set_name("else");
    test::add_node(&else_branch, "/decoder/Neg", "Neg", {"x"}, "y_else");
    test::add_tensor_value(else_branch.add_output(), "y_else", onnx::TensorProto_DataType_FLOAT, "batch_size", 2);
    g->clear_node();
    auto* c = g->add_input();
    c->set_name("use_cache_branch");
    c->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto_DataType_BOOL);
    c->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(1);
    auto* n = test::add_node(g, "optimum::if", "If", {"use_cache_branch"}, "y");
    auto* a = n->add_attribute();
    a->set_name("then_branch");
    a->set_type(onnx::AttributeProto_AttributeType_GRAPH);
    *a->mutable_g() = then_branch;
    a = n->add_attribute();
    a->set_name("else_branch");
    a->set_type(onnx::AttributeProto_AttributeType_GRAPH);
    *a->mutable_g() = else_branch;
    return m;
}
}  // namespace

TEST_CASE("tags reach the nodes inside If branches, in node_views' order, and still pass the checker") {
    test::temp_dir t;
    auto m = if_model();
    onnx::checker::check_model(m);
    auto views = node_views(m.graph());
    REQUIRE(views.size() == 4);  // If, then: Add, Relu, else: Neg
    CHECK(views[0].op_type == "If");
    CHECK(views[1].name == "/layer/Add");
    CHECK(views[3].name == "/decoder/Neg");
    embed_hierarchy_tags(m, {"/M", "/M/Layer", "/M", "/M/Decoder"});
    save_onnx(m, t / "merged.onnx");
    auto back = load_onnx(t / "merged.onnx");
    CHECK_NOTHROW(onnx::checker::check_model(back));
    CHECK(embedded_hierarchy_tags(back.graph()) ==
          std::map<int, std::string>{{0, "/M"}, {1, "/M/Layer"}, {2, "/M"}, {3, "/M/Decoder"}});
    // The branch node itself carries the entry (field 9 of that NodeProto, not of the If).
    const auto& neg = back.graph().node(0).attribute(1).g().node(0);
    CHECK(neg.GetReflection()->GetUnknownFields(neg).field_count() == 1);
    // Re-embedding replaces in the branches too.
    embed_hierarchy_tags(back, {"/M", "/M/A", "/M/B", "/M/C"});
    CHECK(embedded_hierarchy_tags(back.graph()).at(3) == "/M/C");
    CHECK(neg.GetReflection()->GetUnknownFields(neg).field_count() == 1);
}

TEST_CASE("the embedded entry has the wire format of NodeProto.metadata_props (field 9)") {
    auto m = tiny_model();
    embed_hierarchy_tags(m, {"/A", "/B"});
    std::string bytes = m.graph().node(1).SerializeAsString();
    // field 9, wire type 2 -> tag byte 0x4a; then the StringStringEntryProto {1: "hierarchy_tag", 2: "/B"}.
    std::string entry = std::string("\x0a\x0dhierarchy_tag\x12\x02/B", 19);
    CHECK(bytes.find(std::string("\x4a") + static_cast<char>(entry.size()) + entry) != std::string::npos);
}

TEST_CASE("truncated, empty and random files are not ONNX models") {
    test::temp_dir t;
    auto m = tiny_model();
    save_onnx(m, t / "good.onnx");
    std::string good = test::read(t / "good.onnx");
    test::write(t / "truncated.onnx", good.substr(0, good.size() / 2));
    test::write(t / "empty.onnx", "");
    test::write(t / "random.onnx", std::string("\xff\xfe\x01\x02garbage\x99", 12));
    CHECK_NOTHROW(load_onnx(t / "good.onnx"));
    CHECK_THROWS_WITH_AS(load_onnx(t / "truncated.onnx"),
                         doctest::Contains("truncated.onnx: is not a valid ONNX model"), invalid_input);
    CHECK_THROWS_AS(load_onnx(t / "empty.onnx"), invalid_input);
    CHECK_THROWS_AS(load_onnx(t / "random.onnx"), invalid_input);
}

TEST_CASE("external data must stay inside the package and be long enough") {
    test::temp_dir t;
    test::write(t / "weights.bin", std::string(16, '\0'));
    auto problem = [&](const std::string& loc, std::uint64_t off, std::int64_t len) {
        return external_reference_problem({"w", loc, off, len, {}}, t.path());
    };
    CHECK(problem("weights.bin", 0, 16).empty());
    CHECK(problem("../weights.bin", 0, 4).find("outside the package") != std::string::npos);
    CHECK(problem("/etc/passwd", 0, 4).find("absolute path") != std::string::npos);
    CHECK(problem("missing.bin", 0, 4).find("missing file") != std::string::npos);
    CHECK(problem("weights.bin", 8, 16).find("has only 16") != std::string::npos);
    fs::create_symlink("/etc/hostname", t / "link.bin");
    CHECK(problem("link.bin", 0, 1).find("links outside") != std::string::npos);
}

TEST_CASE("depfiles escape spaces, hashes and dollars the way ninja reads them") {
    CHECK(depfile_escape("a b#c$d") == "a\\ b\\#c$$d");
    CHECK(depfile_text("pkg/model.onnx", {"/src/config.json", "/my models/x"}) ==
          "pkg/model.onnx: \\\n  /src/config.json \\\n  /my\\ models/x\n");
}

TEST_CASE("malformed external-data offsets and lengths are problems, not exceptions") {
    test::temp_dir t;
    test::write(t / "weights.bin", std::string(16, '\0'));
    for (const char* bad : {"abc", "-1", "99999999999999999999", " 4", "0x10", ""}) {
        CAPTURE(bad);
        for (const char* key : {"offset", "length"}) {
            onnx::ModelProto m;
            auto* init = m.mutable_graph()->add_initializer();
            init->set_name("w");
            init->set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
            auto* loc = init->add_external_data();
            loc->set_key("location");
            loc->set_value("weights.bin");
            auto* kv = init->add_external_data();
            kv->set_key(key);
            kv->set_value(bad);
            std::vector<external_reference> refs;
            REQUIRE_NOTHROW(refs = external_references(m));
            REQUIRE(refs.size() == 1);
            CHECK(external_reference_problem(refs[0], t.path()).find(std::string("malformed external data ") + key) !=
                  std::string::npos);
        }
    }
}
