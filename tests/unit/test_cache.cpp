#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/export_cache.hpp"

#include <chrono>
#include <thread>

using namespace modelexport;

TEST_CASE("the key record is length-prefixed: a value cannot imitate a field boundary") {
    key_record a, b;
    a.add("option model", "x\noption opset 2:14");
    b.add("option model", "x");
    b.add("option opset", "14");
    CHECK(a.key() != b.key());
    CHECK(a.text() == "option model 19:x\noption opset 2:14\n");
}

TEST_CASE("tokenizer, processor and generation files do not reach the key") {
    std::vector<fs::path> files{"/s/config.json", "/s/tokenizer.json", "/s/vocab.txt", "/s/model.safetensors",
                                "/s/preprocessor_config.json", "/s/generation_config.json", "/s/modeling.py"};
    auto in = exporter_inputs(files);
    CHECK(in == std::vector<fs::path>{"/s/config.json", "/s/model.safetensors", "/s/modeling.py"});
}

TEST_CASE("the key depends on file contents and relative names, not on where the source is") {
    test::temp_dir t;
    for (const char* d : {"a", "b"}) {
        fs::create_directories(t / d);
        test::write(t / d / "config.json", "{}");
    }
    auto key_of = [&](const fs::path& dir) {
        cache_key_inputs in;
        in.strategy = "command";
        in.source_dir = dir;
        in.source_files = {dir / "config.json"};
        return make_cache_key(in, t / "probes").key();
    };
    CHECK(key_of(t / "a") == key_of(t / "b"));
    test::write(t / "b" / "config.json", "{ }");
    CHECK(key_of(t / "a") != key_of(t / "b"));
}

TEST_CASE("a file's hash is remembered under its stat, and an edit is never answered from memory") {
    test::temp_dir t;
    fs::path f = t / "model.safetensors", probes = t / "probes";
    test::write(f, "weights v1");
    auto notes = [&] {
        std::size_t n = 0;
        for (const auto& e : fs::directory_iterator(probes, fs::directory_options::skip_permission_denied))
            n += e.path().filename().string().rfind("file-", 0) == 0;
        return n;
    };
    fs::create_directories(probes);
    // Just written: hashed, not remembered (a same-second rewrite could keep the same stat).
    cache_key_inputs in;
    in.source_dir = t.path();
    in.source_files = {f};
    CHECK(remembered_file_hash(f, probes) == hash_file(f));
    CHECK(notes() == 0);
    CHECK_FALSE(cache_key_is_remembered(in, probes));
    std::this_thread::sleep_for(std::chrono::milliseconds(3100));
    CHECK(remembered_file_hash(f, probes) == hash_file(f));
    CHECK(notes() == 1);
    CHECK(cache_key_is_remembered(in, probes));  // the key now costs a stat: no speculative exporter
    // The note is what answers now: a forged note for this stat is believed (that is the memo)...
    for (const auto& e : fs::directory_iterator(probes)) test::write(e.path(), R"({"sha256":")" + std::string(64, 'f') + R"("})");
    CHECK(remembered_file_hash(f, probes) == std::string(64, 'f'));
    // ...but any write changes mtime/ctime, so the edited file is hashed again.
    test::write(f, "weights v2");
    CHECK_FALSE(cache_key_is_remembered(in, probes));
    CHECK(remembered_file_hash(f, probes) == hash_file(f));
    CHECK(hash_file(f) != std::string(64, 'f'));
}

TEST_CASE("speculation: a miss keeps the strategy's files and stores them; a hit stops the running strategy") {
    test::temp_dir t;
    fs::create_directories(t / "src");
    fs::create_directories(t / "stage");
    test::write(t / "src" / "config.json", "{}");  // just written: its hash is not remembered, so the key is cold
    cache_key_inputs in;
    in.strategy = "command";
    in.source_dir = t / "src";
    in.source_files = {t / "src" / "config.json"};
    cache_settings s;
    s.enabled = true;
    s.dir = t / "cache";
    {
        export_cache c(s, in, nullptr);
        auto hit = c.lookup_or_produce(t / "stage", true, [&] { test::write(t / "stage" / "model.onnx", "exported"); });
        CHECK_FALSE(hit);
        CHECK(c.outcome().result == "miss");
        CHECK(c.outcome().speculative);
        auto hashes = c.store(t / "stage", {"model.onnx"}, json{{"modules", json::array()}});
        CHECK(hashes.at("model.onnx") == hash_file(t / "stage" / "model.onnx"));
        c.finish();
        CHECK(fs::exists(local_cache(s.dir).entry(c.outcome().key)));
    }
    fs::remove_all(t / "stage");
    fs::create_directories(t / "stage");
    export_cache c(s, in, nullptr);
    auto start = std::chrono::steady_clock::now();
    auto hit = c.lookup_or_produce(t / "stage", true, [&] {
        test::write(t / "stage" / "partial", "left by the exporter");
        run_process("/bin/sh", {"-c", "sleep 60"});  // stopped as soon as the lookup finds the entry
        FAIL("the speculative strategy was not stopped");
    });
    REQUIRE(hit);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
    CHECK(c.outcome().result == "hit-local");
    CHECK(test::read(t / "stage" / "model.onnx") == "exported");
    CHECK_FALSE(fs::exists(t / "stage" / "partial"));
}

TEST_CASE("manifests naming paths outside the stage or bad hashes are refused") {
    std::string sha(64, 'a');
    CHECK_NOTHROW(parse_manifest(R"({"format":1,"files":[{"path":"model.onnx","size":1,"sha256":")" + sha + R"("}],"table":{}})"));
    for (std::string bad : {"../x", "/etc/passwd", ".modules.json", "a/b", ""})
        CHECK_THROWS_AS(parse_manifest(R"({"format":1,"files":[{"path":")" + bad + R"(","size":1,"sha256":")" + sha + R"("}],"table":{}})"),
                        cache_error);
    CHECK_THROWS_AS(parse_manifest(R"({"format":1,"files":[{"path":"model.onnx","size":1,"sha256":"AB"}],"table":{}})"), cache_error);
    CHECK_THROWS_AS(parse_manifest("not json"), cache_error);
    CHECK_THROWS_AS(parse_manifest(R"({"format":2,"files":[],"table":{}})"), cache_error);
}

TEST_CASE("sizes") {
    CHECK(parse_size("10G") == (10ull << 30));
    CHECK(parse_size("500MiB") == (500ull << 20));
    CHECK(parse_size("123") == 123u);
    CHECK_FALSE(parse_size("ten"));
    CHECK_FALSE(parse_size("5X"));
}

TEST_CASE("store, find, materialize; a corrupt object is removed and reported") {
    test::temp_dir t;
    fs::create_directories(t / "stage");
    fs::create_directories(t / "out");
    test::write(t / "stage" / "model.onnx", "onnx bytes");
    local_cache c(t / "cache");
    auto stored = c.store("k", t / "stage", {"model.onnx"}, json{{"modules", json::array()}});
    auto m = c.find("k");
    REQUIRE(m);
    CHECK(m->files.size() == 1);
    c.materialize(*m, t / "out");
    CHECK(test::read(t / "out" / "model.onnx") == "onnx bytes");
    CHECK_FALSE(c.find("other"));
    test::write(c.object(stored.files[0].sha256), "onnx bytez");  // same size, other bytes
    fs::remove(t / "out" / "model.onnx");
    CHECK_THROWS_AS(c.materialize(*m, t / "out"), cache_error);
    CHECK_FALSE(fs::exists(c.object(stored.files[0].sha256)));
    CHECK_FALSE(fs::exists(t / "out" / "model.onnx"));
}

TEST_CASE("prune evicts the least recently used until the limit holds") {
    test::temp_dir t;
    fs::create_directories(t / "stage");
    local_cache c(t / "cache");
    test::write(t / "stage" / "a", std::string(1000, 'a'));
    c.store("ka", t / "stage", {"a"}, json::object());
    test::write(t / "stage" / "b", std::string(1000, 'b'));
    c.store("kb", t / "stage", {"b"}, json::object());
    // Make "a" older than "b", then use "a": b is now the least recently used.
    auto old = fs::file_time_type::clock::now() - std::chrono::hours(2);
    for (const auto& e : fs::recursive_directory_iterator(t / "cache"))
        if (e.is_regular_file()) fs::last_write_time(e.path(), old);
    REQUIRE(c.find("ka"));
    c.materialize(*c.find("ka"), t / "stage");
    c.prune(c.stats().bytes - 1001);  // both of kb (entry and object) must go, in either order
    CHECK(c.find("ka"));
    CHECK_FALSE(fs::exists(c.entry("kb")));
    CHECK(c.stats().bytes < 2000);
}

TEST_CASE("no remote without MODELEXPORT_REMOTE_CACHE; credentials never shown") {
    CHECK(redacted_url("https://user:secret@cache.example/p") == "https://cache.example/p");
    CHECK(redacted_url("http://host/a@b") == "http://host/a@b");
}
