// The light reader (onnx/stream.hpp): the graph without the weights, on real model files;
// and wire-level tests of it and the checks on what it reads (onnx/checks.hpp,
// onnx/tensor_walk.hpp): bytes built by hand where protobuf's API cannot write them
// (truncated varints, oversized lengths, a singular field twice), else with the
// protobuf API. Each hostile case is judged as protobuf, and so ONNX Runtime, would read it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/onnx/checks.hpp"
#include "modelexport/onnx/external_data.hpp"
#include "modelexport/onnx/stream.hpp"
#include "modelexport/onnx/tensor_walk.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>
#include <google/protobuf/wire_format_lite.h>
#include <onnx/checker.h>
#include <unistd.h>

#include <map>
#include <set>

using namespace modelexport;

TEST_CASE("large raw_data is skipped by offset, small stays inline, and the graph is intact") {
    test::temp_dir t;
    save_onnx(test::text_classifier(2048), t / "big.onnx");  // 8 KiB of weights: skipped
    save_onnx(test::text_classifier(2), t / "small.onnx");   // 8 bytes: inline
    light_model big = load_onnx_light(t / "big.onnx");
    REQUIRE(big.payloads.size() == 1);
    const skipped_payload& p = big.payloads.front();
    CHECK(p.tensor == "classifier.weight");
    CHECK(p.length == 2048 * 4);
    CHECK(p.offset + p.length <= fs::file_size(t / "big.onnx"));
    CHECK(payload_problem(p).empty());
    CHECK(big.model.graph().node_size() == 3);
    CHECK(big.model.graph().initializer(0).raw_data().empty());  // not read
    CHECK(load_onnx_light(t / "small.onnx").payloads.empty());
    CHECK(load_onnx_light(t / "small.onnx").model.graph().initializer(0).raw_data().size() == 8);
}

TEST_CASE("a payload that does not match its shape is a problem, not an exception") {
    skipped_payload p;
    p.tensor = "w";
    p.length = 12;
    p.data_type = onnx::TensorProto_DataType_FLOAT;
    p.dims = {2, 2};
    CHECK(payload_problem(p) == "tensor 'w' holds 12 bytes but its shape needs 16");
    p.dims = {-1};
    CHECK(payload_problem(p) == "tensor 'w' has a negative dimension");
}

TEST_CASE("a truncated model, one cut inside a skipped payload, or garbage is invalid input") {
    test::temp_dir t;
    save_onnx(test::text_classifier(2048), t / "m.onnx");
    std::string bytes = test::read(t / "m.onnx");
    for (std::size_t keep : {bytes.size() - 1, bytes.size() / 2, std::size_t{3}}) {
        CAPTURE(keep);
        test::write(t / "cut.onnx", bytes.substr(0, keep));
        CHECK_THROWS_AS(load_onnx_light(t / "cut.onnx"), invalid_input);
    }
    test::write(t / "garbage.onnx", std::string(100, '\xff'));
    CHECK_THROWS_AS(load_onnx_light(t / "garbage.onnx"), invalid_input);
    CHECK_THROWS_AS(load_onnx_light(t / "missing.onnx"), error);
}

namespace {

std::string varint(std::uint64_t v) {
    std::string out;
    do {
        unsigned char b = v & 0x7f;
        v >>= 7;
        out += static_cast<char>(v ? b | 0x80 : b);
    } while (v);
    return out;
}

/// A length-delimited field: tag, length, payload.
std::string field(int number, const std::string& payload) {
    return varint(static_cast<std::uint64_t>(number) << 3 | 2) + varint(payload.size()) + payload;
}

std::string bytes(const google::protobuf::Message& m) {
    std::string s;
    REQUIRE(m.SerializeToString(&s));
    return s;
}

void value_info(onnx::ValueInfoProto* v, const std::string& name, std::int64_t width = 4) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto_DataType_FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_value(width);
}

onnx::TensorProto float_tensor(const std::string& name, std::int64_t n) {
    onnx::TensorProto t;
    t.set_name(name);
    t.set_data_type(onnx::TensorProto_DataType_FLOAT);
    t.add_dims(n);
    t.set_raw_data(std::string(static_cast<std::size_t>(n) * 4, '\1'));
    return t;
}

void make_external(onnx::TensorProto& t, const std::string& location, std::uint64_t offset = 0,
                   std::int64_t length = -1) {
    t.clear_raw_data();
    t.clear_float_data();
    t.clear_int64_data();
    t.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
    auto add = [&](const char* k, const std::string& v) {
        auto* e = t.add_external_data();
        e->set_key(k);
        e->set_value(v);
    };
    add("location", location);
    add("offset", std::to_string(offset));
    if (length >= 0) add("length", std::to_string(length));
}

/// y = x + w, with w a float[n] initializer (n * 4 bytes of raw_data).
onnx::ModelProto add_model(std::int64_t n = 4) {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(14);
    auto* g = m.mutable_graph();
    g->set_name("main");
    value_info(g->add_input(), "x", n);
    value_info(g->add_output(), "y", n);
    *g->add_initializer() = float_tensor("w", n);
    auto* add = g->add_node();
    add->set_name("add");
    add->set_op_type("Add");
    add->add_input("x");
    add->add_input("w");
    add->add_output("y");
    return m;
}

/// A Constant node whose `value` attribute is `t`.
onnx::NodeProto constant(const std::string& name, const onnx::TensorProto& t, const std::string& output) {
    onnx::NodeProto n;
    n.set_name(name);
    n.set_op_type("Constant");
    n.add_output(output);
    auto* a = n.add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto_AttributeType_TENSOR);
    *a->mutable_t() = t;
    return n;
}

/// A model whose output comes from an If node; its then branch holds `then_node`.
onnx::ModelProto if_model(const onnx::NodeProto& then_node, const onnx::NodeProto& else_node) {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(14);
    auto* g = m.mutable_graph();
    g->set_name("main");
    auto* c = g->add_input();
    c->set_name("cond");
    c->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto_DataType_BOOL);
    c->mutable_type()->mutable_tensor_type()->mutable_shape();
    value_info(g->add_output(), "y");
    auto* node = g->add_node();
    node->set_name("if");
    node->set_op_type("If");
    node->add_input("cond");
    node->add_output("y");
    for (auto [name, inner] :
         {std::pair<const char*, const onnx::NodeProto*>{"then_branch", &then_node}, {"else_branch", &else_node}}) {
        auto* a = node->add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto_AttributeType_GRAPH);
        auto* branch = a->mutable_g();
        branch->set_name(std::string(name) + "_graph");
        *branch->add_node() = *inner;
        value_info(branch->add_output(), inner->output(0));
    }
    return m;
}

struct package {
    test::temp_dir dir;
    fs::path model() const { return dir / "model.onnx"; }
    void write(const std::string& b) const { test::write(model(), b); }
    light_model load() const { return load_onnx_light(model()); }
    onnx_verdict check() const {
        light_model m = load();
        return check_onnx(m, dir.path());
    }
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a well-formed model passes, with large and small initializers") {
    for (std::int64_t n : {4, 4096}) {
        CAPTURE(n);
        package p;
        p.write(bytes(add_model(n)));
        light_model m = p.load();
        CHECK(m.payloads.size() == (n == 4096 ? 1u : 0u));
        onnx_verdict v = check_onnx(m, p.dir.path());
        CHECK(v.external_data.empty());
        REQUIRE(v.checker);
        CHECK(v.checker->empty());
    }
}

TEST_CASE("truncated varints and cut-off messages are parse errors") {
    package p;
    p.write("\x3a\x80");  // graph field (7), length varint cut after a continuation byte
    CHECK_THROWS_AS(p.load(), invalid_input);
    const std::string whole = bytes(add_model(4096));
    // Every cut inside the graph field (the last and largest field) must fail.
    for (std::size_t cut : {whole.size() - 1, whole.size() - 100, whole.size() - 16000, std::size_t(20)}) {
        CAPTURE(cut);
        p.write(whole.substr(0, cut));
        CHECK_THROWS_AS(p.load(), invalid_input);
    }
}

TEST_CASE("lengths larger than what encloses them are parse errors") {
    package p;
    onnx::ModelProto m = add_model(4096);
    std::string graph = bytes(m.graph());
    m.clear_graph();
    const std::string head = bytes(m);
    // The graph says it is longer than the file.
    p.write(head + varint(7 << 3 | 2) + varint(graph.size() + 10) + graph);
    CHECK_THROWS_AS(p.load(), invalid_input);
    p.write(head + varint(7 << 3 | 2) + varint(0xffffffffu) + graph);
    CHECK_THROWS_AS(p.load(), invalid_input);
    // An initializer longer than its graph; a raw_data longer than its tensor.
    onnx::TensorProto t = float_tensor("w", 1024);
    std::string tensor = bytes(t);
    p.write(head + field(7, varint(5 << 3 | 2) + varint(tensor.size() + 1) + tensor));
    CHECK_THROWS_AS(p.load(), invalid_input);
    std::string raw = varint(9 << 3 | 2) + varint(8192) + std::string(4096, '\0');
    p.write(head + field(7, field(5, raw)));
    CHECK_THROWS_AS(p.load(), invalid_input);
}

TEST_CASE("a graph field given twice is merged as protobuf merges it") {
    package p;
    onnx::ModelProto first = add_model(4096);
    onnx::ModelProto second;
    auto* g2 = second.mutable_graph();
    g2->set_name("second");
    onnx::TensorProto hidden = float_tensor("hidden", 4);
    make_external(hidden, "../outside.bin", 0, 16);
    *g2->add_initializer() = hidden;
    const std::string file = bytes(first) + bytes(second);
    onnx::ModelProto reference;
    REQUIRE(reference.ParseFromString(file));  // what protobuf, and so ONNX Runtime, reads
    p.write(file);
    light_model m = p.load();
    CHECK(m.model.graph().name() == reference.graph().name());
    CHECK(m.model.graph().initializer_size() == reference.graph().initializer_size());
    CHECK(m.model.graph().node_size() == reference.graph().node_size());
    onnx_verdict v = check_onnx(m, p.dir.path());
    CHECK(contains(v.external_data, "initializer 'hidden' points outside the package: ../outside.bin"));
    // The other order: the external tensor first, the large one after.
    p.write(bytes(second) + bytes(first));
    CHECK(contains(p.check().external_data, "points outside the package"));
}

TEST_CASE("of several raw_data fields the last counts") {
    package p;
    onnx::ModelProto m = add_model(4);
    m.mutable_graph()->clear_initializer();
    onnx::TensorProto w = float_tensor("w", 4);
    w.clear_raw_data();
    const std::string head = bytes(m), small = std::string(16, '\2'), large = std::string(8192, '\3');
    auto model_with = [&](const std::string& raws) { return head + field(7, field(5, bytes(w) + raws)); };
    // Large then small: the small one is the tensor's data; nothing is skipped.
    p.write(model_with(field(9, large) + field(9, small)));
    light_model a = p.load();
    CHECK(a.payloads.empty());
    CHECK(a.model.graph().initializer(0).raw_data() == small);
    // Small then large: the large one is skipped, the small one does not survive beside it.
    p.write(model_with(field(9, small) + field(9, large)));
    light_model b = p.load();
    REQUIRE(b.payloads.size() == 1);
    CHECK(b.payloads[0].length == large.size());
    CHECK_FALSE(b.model.graph().initializer(0).has_raw_data());
    onnx_verdict v = check_onnx(b, p.dir.path());
    CHECK(v.external_data.empty());
    CHECK(contains(*v.checker, "holds 8192 bytes but its shape needs 16"));
}

TEST_CASE("a tensor with raw_data and an external location is malformed, however large") {
    for (std::int64_t n : {4, 4096}) {
        CAPTURE(n);
        package p;
        test::write(p.dir / "w.bin", std::string(static_cast<std::size_t>(n) * 4, '\0'));
        onnx::ModelProto m = add_model(n);
        auto* w = m.mutable_graph()->mutable_initializer(0);
        std::string raw = w->raw_data();
        make_external(*w, "w.bin");
        w->set_raw_data(raw);
        p.write(bytes(m));
        CHECK(contains(p.check().external_data, "has both inline data and an external data location"));
    }
}

TEST_CASE("external tensors in nested subgraphs are checked at any depth") {
    onnx::TensorProto outside = float_tensor("c", 4);
    make_external(outside, "../secret.bin", 0, 16);
    onnx::NodeProto bad = constant("deep_constant", outside, "then_out");
    // Three levels: If -> If -> If, the external tensor in the innermost then-branch.
    onnx::ModelProto m = if_model(bad, constant("else_constant", float_tensor("e", 4), "else_out"));
    for (int depth = 0; depth < 2; ++depth) {
        onnx::NodeProto wrapper = m.graph().node(0);
        wrapper.set_name("if" + std::to_string(depth + 1));
        wrapper.clear_input();
        wrapper.add_input("cond");
        wrapper.set_output(0, "then_out");
        m = if_model(wrapper, constant("else_constant", float_tensor("e", 4), "else_out"));
    }
    package p;
    p.write(bytes(m));
    std::string problem = p.check().external_data;
    CHECK(contains(problem, "node 'if1' attribute 'then_branch'"));
    CHECK(contains(problem, "node 'deep_constant' attribute 'value' points outside the package: ../secret.bin"));
    // An absolute path in a Loop body's `tensors` attribute.
    onnx::TensorProto abs = float_tensor("a", 4);
    make_external(abs, "/etc/passwd", 0, 16);
    onnx::NodeProto holder = constant("holder", float_tensor("h", 4), "then_out");
    auto* list = holder.add_attribute();
    list->set_name("extra");
    list->set_type(onnx::AttributeProto_AttributeType_TENSORS);
    *list->add_tensors() = abs;
    p.write(bytes(if_model(holder, constant("else_constant", float_tensor("e", 4), "else_out"))));
    CHECK(contains(p.check().external_data, "attribute 'extra' tensor 'a' points at an absolute path: /etc/passwd"));
}

TEST_CASE("sparse initializers' values and indices are checked") {
    for (bool values : {true, false}) {
        CAPTURE(values);
        onnx::ModelProto m = add_model();
        auto* s = m.mutable_graph()->add_sparse_initializer();
        s->add_dims(8);
        *s->mutable_values() = float_tensor("sv", 2);
        onnx::TensorProto idx;
        idx.set_name("si");
        idx.set_data_type(onnx::TensorProto_DataType_INT64);
        idx.add_dims(2);
        idx.add_int64_data(1);
        idx.add_int64_data(5);
        *s->mutable_indices() = idx;
        make_external(values ? *s->mutable_values() : *s->mutable_indices(), "../outside.bin", 0, 16);
        package p;
        p.write(bytes(m));
        CHECK(contains(p.check().external_data,
                       std::string("sparse initializer ") + (values ? "values" : "indices") + " points outside"));
    }
}

TEST_CASE("model-local function bodies are checked") {
    onnx::ModelProto m = add_model();
    auto* f = m.add_functions();
    f->set_name("f");
    f->set_domain("local");
    onnx::TensorProto t = float_tensor("ft", 4);
    make_external(t, "sub/../../x.bin", 0, 16);
    *f->add_node() = constant("fc", t, "fo");
    package p;
    p.write(bytes(m));
    CHECK(contains(p.check().external_data, "function 'f' node 'fc' attribute 'value' points outside the package"));
}

TEST_CASE("links, special files and ranges outside the file are refused everywhere") {
    package p;
    test::write(p.dir / "w.bin", std::string(16, '\0'));
    fs::create_symlink("/etc/hostname", p.dir / "link.bin");
    REQUIRE(::mkfifo((p.dir / "fifo.bin").c_str(), 0644) == 0);
    struct expectation {
        std::string location;
        std::uint64_t offset;
        std::int64_t length;
        std::string says;
    };
    for (const auto& e :
         {expectation{"link.bin", 0, 16, "links outside the package"},
          expectation{"fifo.bin", 0, 16, "not a regular file"}, expectation{"w.bin", 8, 16, "which has only 16"},
          expectation{"w.bin", 17, -1, "which has only 16"},
          expectation{"w.bin", 9223372036854775807ull, 9223372036854775807ll, "which has only 16"},
          expectation{"missing.bin", 0, 16, "needs missing file missing.bin"}}) {
        CAPTURE(e.location);
        onnx::TensorProto t = float_tensor("c", 4);
        make_external(t, e.location, e.offset, e.length);
        p.write(bytes(if_model(constant("k", t, "then_out"), constant("e", float_tensor("e", 4), "else_out"))));
        onnx_verdict v = p.check();
        CHECK(contains(v.external_data, e.says));
        CHECK_FALSE(v.checker);
    }
}

TEST_CASE("payload sizes of every tensor are checked with checked arithmetic") {
    package p;
    onnx::ModelProto small = add_model(4);
    small.mutable_graph()->mutable_initializer(0)->set_raw_data(std::string(12, '\0'));  // 3 floats for 4
    p.write(bytes(small));
    CHECK(contains(*p.check().checker, "holds 12 bytes but its shape needs 16"));
    onnx::ModelProto typed = add_model(4);
    auto* w = typed.mutable_graph()->mutable_initializer(0);
    w->clear_raw_data();
    w->add_float_data(1);
    p.write(bytes(typed));
    CHECK(contains(*p.check().checker, "holds 1 values but its shape needs 4"));
    // 2^62 * 2^2 * 4 bytes wraps to 0 in 64 bits: must not match an empty payload.
    for (std::int64_t n : {4, 4096}) {
        onnx::ModelProto wrap = add_model(n);
        auto* t = wrap.mutable_graph()->mutable_initializer(0);
        t->clear_dims();
        t->add_dims(std::int64_t(1) << 62);
        t->add_dims(4);
        t->add_dims(n);
        p.write(bytes(wrap));
        CHECK(contains(*p.check().checker, "overflows"));
    }
    // In a subgraph too.
    onnx::TensorProto bad = float_tensor("c", 4);
    bad.set_raw_data(std::string(5, '\0'));
    p.write(bytes(if_model(constant("k", bad, "then_out"), constant("e", float_tensor("e", 4), "else_out"))));
    CHECK(contains(*p.check().checker, "node 'k' attribute 'value' holds 5 bytes but its shape needs 16"));
    // External data whose length does not match the shape.
    test::write(p.dir / "w.bin", std::string(64, '\0'));
    onnx::TensorProto ext = float_tensor("c", 4);
    make_external(ext, "w.bin", 0, 20);
    p.write(bytes(if_model(constant("k", ext, "then_out"), constant("e", float_tensor("e", 4), "else_out"))));
    CHECK(contains(*p.check().checker, "holds 20 bytes but its shape needs 16"));
}

TEST_CASE("external locations resolve against the package, not the working directory") {
    test::temp_dir elsewhere;
    test::write(elsewhere / "w.bin", std::string(16, '\0'));
    package p;
    onnx::TensorProto t = float_tensor("c", 4);
    make_external(t, "w.bin", 0, 16);
    p.write(bytes(if_model(constant("k", t, "then_out"), constant("e", float_tensor("e", 4), "else_out"))));
    const fs::path before = fs::current_path();
    fs::current_path(elsewhere.path());  // w.bin exists here, not in the package
    onnx_verdict missing = p.check();
    test::write(p.dir / "w.bin", std::string(16, '\0'));
    fs::remove(elsewhere / "w.bin");  // and now only in the package
    onnx_verdict present = p.check();
    fs::current_path(before);
    CHECK(contains(missing.external_data, "needs missing file w.bin"));
    CHECK(present.external_data.empty());
    REQUIRE(present.checker);
    CHECK(*present.checker == "");
}

TEST_CASE("the walk visits every place a tensor can be, in a fixed order") {
    onnx::ModelProto m =
        if_model(constant("k", float_tensor("c", 4), "then_out"), constant("e", float_tensor("e", 4), "else_out"));
    *m.mutable_graph()->add_initializer() = float_tensor("w", 4);
    auto* s = m.mutable_graph()->add_sparse_initializer();
    *s->mutable_values() = float_tensor("sv", 1);
    auto* f = m.add_functions();
    f->set_name("f");
    *f->add_node() = constant("fc", float_tensor("ft", 4), "fo");
    std::vector<std::string> seen;
    const std::string before = bytes(m);
    for_each_tensor(m, [&](onnx::TensorProto& t, const tensor_site&) { seen.push_back(t.name()); });
    CHECK(seen == std::vector<std::string>{"w", "sv", "c", "e", "ft"});
    CHECK(bytes(m) == before);  // walking adds no fields
}

namespace {

/// Whether a message of type `d` can hold a TensorProto at some depth (via any message field).
bool can_hold_tensor(const google::protobuf::Descriptor* d, std::set<const google::protobuf::Descriptor*>& on_path) {
    if (d == onnx::TensorProto::descriptor()) return true;
    if (!on_path.insert(d).second) return false;
    bool holds = false;
    for (int i = 0; i < d->field_count() && !holds; ++i) {
        const auto* f = d->field(i);
        holds = f->message_type() && can_hold_tensor(f->message_type(), on_path);
    }
    on_path.erase(d);
    return holds;
}

bool can_hold_tensor(const google::protobuf::Descriptor* d) {
    std::set<const google::protobuf::Descriptor*> on_path;
    return can_hold_tensor(d, on_path);
}

/// Puts one element in every field of `m` that can hold a tensor, recursively (a message type
/// nests in itself at most twice, so If bodies inside If bodies are there too); each tensor
/// gets a fresh name, recorded in `made` with the path of fields that leads to it.
void fill_every_tensor_field(google::protobuf::Message& m, std::map<const google::protobuf::Descriptor*, int>& depth,
                             const std::string& path, std::map<std::string, std::string>& made) {
    const auto* d = m.GetDescriptor();
    if (d == onnx::TensorProto::descriptor()) {
        std::string name = "t" + std::to_string(made.size());
        static_cast<onnx::TensorProto&>(m).set_name(name);
        made[name] = path;
        return;
    }
    if (depth[d] >= 2) return;
    ++depth[d];
    const auto* r = m.GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
        const auto* f = d->field(i);
        if (!f->message_type() || !can_hold_tensor(f->message_type())) continue;
        auto* child = f->is_repeated() ? r->AddMessage(&m, f) : r->MutableMessage(&m, f);
        fill_every_tensor_field(*child, depth, path + "." + f->name(), made);
    }
    --depth[d];
}

}  // namespace

TEST_CASE("the walk visits every field of the schema that can hold a tensor") {
    // Built from onnx.proto's descriptor, not from a list: a field the schema adds where a
    // TensorProto, SparseTensorProto or GraphProto can live gets a tensor here, and the walk
    // must find it.
    onnx::ModelProto m;
    std::map<const google::protobuf::Descriptor*, int> depth;
    std::map<std::string, std::string> made;
    fill_every_tensor_field(m, depth, "ModelProto", made);
    std::set<std::string> paths;
    for (const auto& [name, path] : made) paths.insert(path);
    // The rarer homes are among them (the schema has them; the walk visited them before only partly).
    CHECK(paths.count("ModelProto.training_info.initialization.initializer"));
    CHECK(paths.count("ModelProto.training_info.algorithm.sparse_initializer.indices"));
    CHECK(paths.count("ModelProto.graph.node.attribute.graphs.node.attribute.sparse_tensors.values"));
    std::map<std::string, int> seen;
    for_each_tensor(m, [&](onnx::TensorProto& t, const tensor_site&) { ++seen[t.name()]; });
    for (const auto& [name, path] : made) {
        INFO("the tensor at " << path);
        CHECK(seen[name] == 1);
    }
    CHECK(seen.size() == made.size());
}

TEST_CASE("the walk visits a function's attribute defaults whether or not the schema it was built with knows them") {
    // FunctionProto.attribute_proto is field 11 since ONNX 1.13; older generated code keeps it as
    // an unknown field, which ONNX Runtime reads all the same.
    onnx::ModelProto m;
    auto* f = m.add_functions();
    f->set_name("f");
    onnx::AttributeProto a;
    a.set_name("alpha");
    a.set_type(onnx::AttributeProto::TENSOR);
    *a.mutable_t() = float_tensor("default", 4);
    make_external(*a.mutable_t(), "../../outside.bin");
    std::string wire;
    {
        google::protobuf::io::StringOutputStream sos(&wire);
        google::protobuf::io::CodedOutputStream out(&sos);
        out.WriteTag(google::protobuf::internal::WireFormatLite::MakeTag(
            11, google::protobuf::internal::WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
        const std::string body = a.SerializeAsString();
        out.WriteVarint32(static_cast<std::uint32_t>(body.size()));
        out.WriteRaw(body.data(), static_cast<int>(body.size()));
    }
    REQUIRE(f->MergeFromString(wire));
    const std::string before = bytes(m);
    std::vector<std::string> seen;
    for_each_tensor(
        m, [&](onnx::TensorProto& t, const tensor_site& site) { seen.push_back(site.where + ": " + t.name()); });
    REQUIRE(seen.size() == 1);
    CHECK(contains(seen[0], "function 'f' default attribute 'alpha'"));
    CHECK(bytes(m) == before);  // walking changes nothing
    // A visitor's change is kept: the gathering step rewrites locations through the walk.
    for_each_tensor(m, [&](onnx::TensorProto& t, const tensor_site&) { t.set_name("renamed"); });
    seen.clear();
    for_each_tensor(m, [&](onnx::TensorProto& t, const tensor_site&) { seen.push_back(t.name()); });
    CHECK(seen == std::vector<std::string>{"renamed"});
    // And the containment check sees it: a default pointing out of the package is refused.
    CHECK(contains(external_references(m).at(0).location, "../../outside.bin"));
}

TEST_CASE("gathering per-tensor files streams them into model.onnx_data at aligned offsets") {
    test::temp_dir data, stage;
    onnx::ModelProto m =
        if_model(constant("k", float_tensor("c", 4), "then_out"), constant("e", float_tensor("e", 4), "else_out"));
    *m.mutable_graph()->add_initializer() = float_tensor("w", 3);
    test::write(data / "c.bin", std::string(16, 'c'));
    test::write(data / "w.bin", std::string(4, '-') + std::string(12, 'w'));  // w's bytes start at offset 4
    make_external(*m.mutable_graph()
                       ->mutable_node(0)
                       ->mutable_attribute(0)
                       ->mutable_g()
                       ->mutable_node(0)
                       ->mutable_attribute(0)
                       ->mutable_t(),
                  "c.bin");
    make_external(*m.mutable_graph()->mutable_initializer(0), "w.bin", 4, 12);
    test::write(stage / "model.onnx", bytes(m));
    gathered_data g = gather_external_data(stage / "model.onnx", "model", files_inside(data.path(), "model"));
    CHECK(g.rewritten);
    CHECK(g.inputs.size() == 2);
    std::string gathered = test::read(stage / "model.onnx_data");
    CHECK(gathered.size() == 4096 + 16);
    CHECK(gathered.substr(0, 12) == std::string(12, 'w'));
    CHECK(gathered.substr(4096) == std::string(16, 'c'));
    CHECK(g.sha256.at("model.onnx_data") == hash_file(stage / "model.onnx_data"));
    CHECK(g.sha256.at("model.onnx") == hash_file(stage / "model.onnx"));
    light_model back = load_onnx_light(stage / "model.onnx");
    onnx_verdict v = check_onnx(back, stage.path());
    CHECK(v.external_data.empty());
    REQUIRE(v.checker);
    CHECK(*v.checker == "");
    // A range past the end of its file is refused before anything is written into the package.
    test::write(stage / "model.onnx", bytes(m));
    fs::remove(stage / "model.onnx_data");
    test::write(data / "w.bin", std::string(8, 'w'));
    CHECK_THROWS_WITH_AS(gather_external_data(stage / "model.onnx", "model", files_inside(data.path(), "model")),
                         doctest::Contains("which has only 8"), invalid_input);
    // Only model.onnx_data already: nothing to gather, the bytes stay as they are.
    onnx::ModelProto single = add_model(4);
    make_external(*single.mutable_graph()->mutable_initializer(0), "model.onnx_data", 0, 16);
    test::write(stage / "model.onnx", bytes(single));
    CHECK_FALSE(gather_external_data(stage / "model.onnx", "model", files_inside(data.path(), "model")).rewritten);
}
