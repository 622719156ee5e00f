#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/export/source.hpp"

using namespace modelexport;

namespace {

const std::string commit_a(40, 'a');
const std::string commit_b = "0123456789abcdef0123456789abcdef01234567";

/// A real huggingface_hub cache tree: refs, snapshots with relative links into blobs, two revisions.
void make_cache(const fs::path& cache) {
    fs::path repo = cache / "models--acme--tiny-bert";
    test::write(repo / "refs" / "main", commit_a);
    test::write(repo / "refs" / "v1.0", commit_b + "\n");
    test::write(repo / "blobs" / "cfg-a", R"({"model_type": "bert"})");
    test::write(repo / "blobs" / "cfg-b", R"({"model_type": "bert", "revision": "b"})");
    fs::create_directories(repo / "snapshots" / commit_a);
    fs::create_directories(repo / "snapshots" / commit_b);
    fs::create_symlink("../../blobs/cfg-a", repo / "snapshots" / commit_a / "config.json");
    fs::create_symlink("../../blobs/cfg-b", repo / "snapshots" / commit_b / "config.json");
}

}  // namespace

TEST_CASE("hub ids parse into org, name and revision") {
    auto id = parse_hub_id("acme/tiny-bert@v1.0");
    CHECK(id.org == "acme");
    CHECK(id.name == "tiny-bert");
    CHECK(id.revision == "v1.0");
    CHECK(id.cache_folder() == "models--acme--tiny-bert");
    CHECK(parse_hub_id("bert-base-uncased").revision == "main");
    CHECK(parse_hub_id("acme/m@refs/pr/1").revision == "refs/pr/1");
}

TEST_CASE("invalid hub ids are rejected before touching the file system") {
    for (const std::string& bad :
         std::vector<std::string>{"", "../etc", "acme/..", "/etc/passwd", "acme/", "/acme", "acme//x", "a/b/c",
                                  "acme/x@", "acme/x@../../etc", "acme/x\n", std::string("acme/x\x01"),
                                  "acme/" + std::string(600, 'x'), "acme/na--me", "acme/.hidden", "acme/x@a b"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_hub_id(bad), invalid_input);
    }
}

TEST_CASE("a hub id resolves by branch, tag and commit in a real cache tree") {
    test::temp_dir t;
    make_cache(t.path());
    auto main = resolve_source("acme/tiny-bert", t.path());
    CHECK(main.from_cache());
    CHECK(main.commit == commit_a);
    CHECK(main.revision == "main");
    CHECK(test::read(*main.file("config.json")) == R"({"model_type": "bert"})");
    CHECK(main.file("config.json")->parent_path().filename() == "blobs");

    auto tag = resolve_source("acme/tiny-bert@v1.0", t.path());
    CHECK(tag.commit == commit_b);
    CHECK(test::read(*tag.file("config.json")).find("\"b\"") != std::string::npos);

    auto by_commit = resolve_source("acme/tiny-bert@" + commit_b, t.path());
    CHECK(by_commit.commit == commit_b);
    CHECK_FALSE(main.file("tokenizer.json").has_value());
}

TEST_CASE("model not found names the id and every place searched") {
    test::temp_dir t;
    make_cache(t.path());
    try {
        resolve_source("acme/other", t.path());
        FAIL("expected model_not_found");
    } catch (const model_not_found& e) {
        std::string msg = e.what();
        CHECK(msg.find("acme/other") != std::string::npos);
        CHECK(msg.find((t / "models--acme--other").string()) != std::string::npos);
        CHECK(msg.find("(local directory)") != std::string::npos);
        CHECK(e.code() == exit_code::model_not_found);
    }
    CHECK_THROWS_AS(resolve_source("acme/tiny-bert@nope", t.path()), model_not_found);
    CHECK_THROWS_AS(resolve_source("./no/such/dir", t.path()), model_not_found);
}

TEST_CASE("a ref naming a missing snapshot is model-not-found; a corrupt ref is invalid input") {
    test::temp_dir t;
    make_cache(t.path());
    test::write(t / "models--acme--tiny-bert" / "refs" / "gone", commit_b.substr(0, 39) + "c");
    test::write(t / "models--acme--tiny-bert" / "refs" / "bad", "not a hash");
    CHECK_THROWS_AS(resolve_source("acme/tiny-bert@gone", t.path()), model_not_found);
    CHECK_THROWS_AS(resolve_source("acme/tiny-bert@bad", t.path()), invalid_input);
}

TEST_CASE("cache links that leave the repository's folder are refused") {
    test::temp_dir t;
    make_cache(t.path());
    test::write(t / "secret.txt", "secret");
    fs::path snap = t / "models--acme--tiny-bert" / "snapshots" / commit_a;
    fs::create_symlink("../../../secret.txt", snap / "tokenizer.json");
    auto src = resolve_source("acme/tiny-bert", t.path());
    CHECK_THROWS_WITH_AS(src.file("tokenizer.json"), doctest::Contains("refusing to read it"), invalid_input);
}

TEST_CASE("a local directory is a source, and links out of it are refused") {
    test::temp_dir t;
    test::make_text_source(t / "model");
    test::write(t / "outside.json", "{}");
    fs::create_symlink(t / "outside.json", t / "model" / "special_tokens_map.json");
    auto src = resolve_source((t / "model").string(), t / "cache");
    CHECK_FALSE(src.from_cache());
    CHECK(src.file("config.json").has_value());
    CHECK_THROWS_AS(src.file("special_tokens_map.json"), invalid_input);
}

TEST_CASE("HF_HUB_CACHE wins over HF_HOME") {
    ::setenv("HF_HOME", "/tmp/hf-home", 1);
    ::unsetenv("HF_HUB_CACHE");
    CHECK(hub_cache_dir() == fs::path("/tmp/hf-home/hub"));
    ::setenv("HF_HUB_CACHE", "/tmp/hub-cache", 1);
    CHECK(hub_cache_dir() == fs::path("/tmp/hub-cache"));
    ::unsetenv("HF_HUB_CACHE");
    ::unsetenv("HF_HOME");
}

TEST_CASE("'..' anywhere in an id or a revision is refused, as huggingface_hub and git do") {
    for (const char* bad : {"acme/a..b", "ac..me/x", "a..b", "acme/x@v1..2", "acme/x@refs/..x", "acme/x@x../y"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_hub_id(bad), invalid_input);
    }
    CHECK(parse_hub_id("acme/a.b@v1.2").name == "a.b");
}
