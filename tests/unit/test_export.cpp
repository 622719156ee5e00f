// The export pipeline's steps one by one (export.hpp, export/strategies.hpp, onnx/project.hpp) and the
// build edge (export/build_edge.hpp), on real files: a prebuilt ONNX model written with the onnx API.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"
#include "test_support.hpp"

#include "modelexport/export.hpp"
#include "modelexport/export/build_edge.hpp"

#include <thread>

using namespace modelexport;

namespace {

fs::path prebuilt_source(const test::temp_dir& t) { return test::prebuilt_source(t / "src"); }

/// A resolved prebuilt source and an empty staging directory: the state before "produce".
struct resolved_fixture {
    test::temp_dir t;
    fs::path src = prebuilt_source(t), stage = t / "stage";
    resolved_model m = resolve_model(src.string(), "", t / "out");
    export_options opt;
    resolved_fixture() { fs::create_directories(stage); }
};

}  // namespace

TEST_CASE("resolve: source, config, task from architectures, and the output may not lie inside the source") {
    test::temp_dir t;
    fs::path src = prebuilt_source(t);
    resolved_model m = resolve_model(src.string(), "", t / "out");
    CHECK(m.task->name == "text-classification");
    CHECK(m.root_class == "BertForSequenceClassification");
    CHECK(m.config_path.filename() == "config.json");
    CHECK(resolve_model(src.string(), "text-classification", t / "out").task->name == "text-classification");
    // A --task that contradicts the head config.json names is refused (the alias is mapped first).
    CHECK_THROWS_AS(resolve_model(src.string(), "image-segmentation", t / "out"), usage_error);
    CHECK_THROWS_AS(resolve_model(src.string(), "", src / "pkg"), usage_error);
    CHECK_THROWS_AS(resolve_model(src.string(), "no-such-task", t / "out"), usage_error);
    fs::remove(src / "config.json");
    CHECK_THROWS_AS(resolve_model(src.string(), "", t / "out"), config_missing);
}

TEST_CASE_FIXTURE(resolved_fixture,
                  "produce: auto picks prebuilt for a source with model.onnx, which is copied byte for byte") {
    CHECK(choose_strategy(strategy::automatic, m.source, "") == strategy::prebuilt);
    CHECK(choose_strategy(strategy::automatic, m.source, "modeling.py:build") == strategy::htp);
    produced_onnx p = produce_onnx(strategy::prebuilt, m.source, *m.task, stage, opt);
    REQUIRE(p.models == std::vector<std::string>{"model.onnx"});
    CHECK(p.data_files.empty());
    CHECK(test::read(stage / "model.onnx") == test::read(src / "model.onnx"));
    CHECK(p.hashes.known("model.onnx") == hash_file(src / "model.onnx"));
    CHECK_THROWS_AS(produce_onnx(strategy::automatic, m.source, *m.task, stage, opt), usage_error);
}

TEST_CASE("staged hashes: a known hash is kept, not read again, and follows its file's rename") {
    test::temp_dir t;
    test::write(t / "model.onnx", "bytes");
    test::write(t / "other.onnx", "other bytes");
    staged_hashes h;
    CHECK_FALSE(h.known("model.onnx"));
    CHECK(h.of(t.path(), "other.onnx") == hash_file(t / "other.onnx"));  // unknown: read
    h.remember("model.onnx", "recorded");
    CHECK(h.of(t.path(), "model.onnx") == "recorded");  // known: never read again
    h.remember({{"model.onnx", "rewritten"}});
    fs::create_directory(t / "onnx");
    h.rename(t.path(), "model.onnx", "onnx/model.onnx");
    CHECK(fs::exists(t / "onnx" / "model.onnx"));
    CHECK_FALSE(h.known("model.onnx"));
    CHECK(h.known("onnx/model.onnx") == std::optional<std::string>("rewritten"));
    h.rename(t.path(), "other.onnx", "onnx/other.onnx");  // no hash to carry
    CHECK_FALSE(h.known("onnx/other.onnx"));
}

TEST_CASE("project: scope tags without a trace, parameters from initializers, embedding rewrites the file") {
    test::temp_dir t;
    save_onnx(test::tiny_model(), t / "model.onnx");
    projected_model p =
        project_model({t / "model.onnx", "src/model.onnx", t.path(), nullptr, "BertModel", false, false});
    CHECK(p.proj.tags == std::vector<std::string>{"/BertModel/layer", "/BertModel"});
    CHECK(p.initializer_parameters == 2);
    CHECK_FALSE(p.rewritten_sha256);
    CHECK(p.sig.inputs.at(0).name == "x");
    projected_model e =
        project_model({t / "model.onnx", "src/model.onnx", t.path(), nullptr, "BertModel", false, true});
    REQUIRE(e.rewritten_sha256);
    CHECK(*e.rewritten_sha256 == hash_file(t / "model.onnx"));
    test::write(t / "model.onnx", "not onnx");
    CHECK_THROWS_WITH_AS(project_model({t / "model.onnx", "src/model.onnx", t.path(), nullptr, "M", false, false}),
                         doctest::Contains("src/model.onnx"), invalid_input);
}

TEST_CASE_FIXTURE(resolved_fixture, "assemble and metadata: every package file hashed, inputs sorted and unique") {
    produced_onnx p = produce_onnx(strategy::prebuilt, m.source, *m.task, stage, opt);
    projected_model pr = project_model({stage / "model.onnx", p.shown, stage, &p.modules, m.root_class, false, false});
    assembled_files a = assemble_files(m, p, stage, {});
    std::vector<std::string> names;
    for (const auto& f : a.files) names.push_back(f.name);
    CHECK(names.front() == "model.onnx");
    CHECK(std::count(names.begin(), names.end(), "vocab.txt") == 1);
    CHECK(std::is_sorted(a.inputs.begin(), a.inputs.end()));
    CHECK(std::adjacent_find(a.inputs.begin(), a.inputs.end()) == a.inputs.end());
    auto [doc, sha] = write_metadata(m, strategy::prebuilt, p, pr, a, opt, stage);
    CHECK(doc["model"]["parameters_origin"] == "onnx initializers");
    CHECK(doc["modules"].contains("classifier"));
    CHECK(sha.at("export_metadata.json") == hash_file(stage / "export_metadata.json"));
}

TEST_CASE("export_package commits; hooks run before the commit and a throwing hook leaves no package") {
    test::temp_dir t;
    fs::path src = prebuilt_source(t);
    export_options opt;
    opt.source = src.string();
    opt.output = t / "pkg";
    export_hooks hooks;
    hooks.before_commit = [&](const fs::path& staging, const export_result& r) {
        CHECK(fs::exists(staging / "export_metadata.json"));
        CHECK_FALSE(fs::exists(t / "pkg"));
        CHECK(r.metadata["model"]["task"] == "text-classification");
        throw io_error("side.d", "cannot write");
    };
    CHECK_THROWS_AS(export_package(opt, hooks), io_error);
    CHECK_FALSE(fs::exists(t / "pkg"));
    export_result r = export_package(opt);
    CHECK(fs::is_regular_file(t / "pkg" / "model.onnx"));
    CHECK(r.step_seconds.back().first == "commit");
}

TEST_CASE("build edge: --expect names missing and extra files; a depfile in the package arrives with it") {
    test::temp_dir t;
    test::write(t / "stage" / "model.onnx", "x");
    test::write(t / "stage" / "config.json", "{}");
    CHECK_NOTHROW(check_expected(t / "stage", {"model.onnx", "config.json"}, t / "pkg"));
    CHECK_THROWS_WITH_AS(
        check_expected(t / "stage", {"model.onnx", "vocab.txt"}, t / "pkg"),
        doctest::Contains("declared but not produced: vocab.txt; produced but not declared: config.json"), usage_error);

    fs::path src = prebuilt_source(t);
    export_options opt;
    opt.source = src.string();
    opt.output = t / "pkg";
    build_edge edge;
    edge.depfile = t / "pkg" / "pkg-package.d";
    export_for_build(opt, edge);
    CHECK(test::read(edge.depfile).rfind((t / "pkg" / "model.onnx").string() + ":", 0) == 0);
    edge.depfile = t / "no" / "dir" / "x.d";
    CHECK_THROWS_AS(export_for_build(opt, edge), io_error);
    CHECK(fs::is_regular_file(t / "pkg" / "model.onnx"));
    CHECK(fs::exists(t / "pkg" / "pkg-package.d"));  // the previous package, with its depfile, stays
}

TEST_CASE(
    "final_file_hash: the exporter's final-file line starts the hash; a file changed or relinked since is hashed "
    "again") {
    test::temp_dir t;
    const std::string line = std::string(final_file_line) + "model.onnx";
    SUBCASE("the line names the file: its hash, once the file is unchanged") {
        test::write(t / "model.onnx", "onnx bytes");
        final_file_hash early(t.path(), "model.onnx");
        early.on_line("htp: exporting");
        early.on_line(line);
        early.on_line(line);  // a repeat starts nothing more
        CHECK(early.result() == std::optional<std::string>(sha256_hex("onnx bytes")));
    }
    SUBCASE("no line, or another file's: nothing known") {
        test::write(t / "model.onnx", "onnx bytes");
        final_file_hash early(t.path(), "model.onnx");
        early.on_line(std::string(final_file_line) + "other.onnx");
        CHECK_FALSE(early.result().has_value());
    }
    SUBCASE("rewritten after the line (another inode or size): not trusted") {
        test::write(t / "model.onnx", "onnx bytes");
        final_file_hash early(t.path(), "model.onnx");
        early.on_line(line);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        fs::remove(t / "model.onnx");
        test::write(t / "model.onnx", "other bytes, longer");
        auto sha = early.result();  // none, unless the thread began after the rewrite: then the new bytes'
        CHECK((!sha || *sha == hash_file(t / "model.onnx")));
    }
    SUBCASE("rewritten in place, same size, modification time put back: the change time gives it away") {
        test::write(t / "model.onnx", "onnx bytes");
        auto written = fs::last_write_time(t / "model.onnx");
        final_file_hash early(t.path(), "model.onnx");
        early.on_line(line);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        {
            unique_fd fd = open_or_throw(t / "model.onnx", O_WRONLY);
            CHECK(::pwrite(fd.get(), "ONNX", 4, 0) == 4);
        }
        fs::last_write_time(t / "model.onnx", written);
        auto sha = early.result();
        CHECK((!sha || *sha == hash_file(t / "model.onnx")));
        CHECK(hash_file(t / "model.onnx") == sha256_hex("ONNX bytes"));
    }
    SUBCASE("a file with a second name (its bytes may change through it), a link or none: not trusted") {
        test::write(t / "outside", "onnx bytes");
        fs::create_hard_link(t / "outside", t / "model.onnx");
        final_file_hash linked(t.path(), "model.onnx");
        linked.on_line(line);
        CHECK_FALSE(linked.result().has_value());
        fs::remove(t / "model.onnx");
        fs::create_symlink(t / "outside", t / "model.onnx");
        final_file_hash symlinked(t.path(), "model.onnx");
        symlinked.on_line(line);
        CHECK_FALSE(symlinked.result().has_value());
        fs::remove(t / "model.onnx");
        final_file_hash missing(t.path(), "model.onnx");
        missing.on_line(line);
        CHECK_FALSE(missing.result().has_value());
    }
    SUBCASE("watching() still shows every line to the caller's own callback") {
        test::write(t / "model.onnx", "onnx bytes");
        final_file_hash early(t.path(), "model.onnx");
        export_options opt;
        std::vector<std::string> shown;
        opt.exporter_line = [&](const std::string& l, bool) { shown.push_back(l); };
        export_options watched = early.watching(opt);
        watched.exporter_line("htp: loading", false);
        watched.exporter_line(line, false);
        CHECK(shown == std::vector<std::string>{"htp: loading", line});
        CHECK(early.result() == std::optional<std::string>(sha256_hex("onnx bytes")));
    }
}
