#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/cache/export_cache.hpp"
#include "modelexport/export/staged_hashes.hpp"

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include <sys/stat.h>
#include <sys/wait.h>

using namespace modelexport;

namespace {
/// A real model's bytes: a hit's models must pass the checks every export's model gets.
const std::string& exported() {
    static const std::string bytes = test::text_classifier(2).SerializeAsString();
    return bytes;
}
const std::string& other_model() {
    static const std::string bytes = test::text_classifier(3).SerializeAsString();
    return bytes;
}
}  // namespace

TEST_CASE("the key record is length-prefixed: a value cannot imitate a field boundary") {
    key_record a, b;
    a.add("option model", "x\noption opset 2:14");
    b.add("option model", "x");
    b.add("option opset", "14");
    CHECK(a.key() != b.key());
    CHECK(a.text() == "option model 19:x\noption opset 2:14\n");
}

TEST_CASE("tokenizer, processor and generation files do not reach the key") {
    std::vector<fs::path> files{"/s/config.json",       "/s/tokenizer.json",           "/s/vocab.txt",
                                "/s/model.safetensors", "/s/preprocessor_config.json", "/s/generation_config.json",
                                "/s/modeling.py"};
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
    for (const auto& e : fs::directory_iterator(probes))
        test::write(e.path(), R"({"sha256":")" + std::string(64, 'f') + R"("})");
    CHECK(remembered_file_hash(f, probes) == std::string(64, 'f'));
    // ...but any write changes mtime/ctime, so the edited file is hashed again.
    test::write(f, "weights v2");
    CHECK_FALSE(cache_key_is_remembered(in, probes));
    CHECK(remembered_file_hash(f, probes) == hash_file(f));
    CHECK(hash_file(f) != std::string(64, 'f'));
}

namespace {
/// A `command` export of a source holding only config.json (just written: its hash is not
/// remembered, so the key is cold), with a cache under `t`; the stage is empty.
struct command_source {
    cache_key_inputs in;
    cache_settings s;
    explicit command_source(const fs::path& t) {
        fs::create_directories(t / "src");
        fs::create_directories(t / "stage");
        test::write(t / "src" / "config.json", "{}");
        in.strategy = "command";
        in.source_dir = t / "src";
        in.source_files = {t / "src" / "config.json"};
        s.enabled = true;
        s.dir = t / "cache";
    }
};
}  // namespace

TEST_CASE("speculation: a miss keeps the strategy's files and stores them; a hit stops the running strategy") {
    test::temp_dir t;
    auto [in, s] = command_source(t.path());
    {
        export_cache c(s, in, nullptr);
        auto hit = c.lookup_or_produce(t / "stage", true, [&] { test::write(t / "stage" / "model.onnx", exported()); });
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
    CHECK(test::read(t / "stage" / "model.onnx") == exported());
    CHECK_FALSE(fs::exists(t / "stage" / "partial"));
}

TEST_CASE("background store: after the export, from the staged inodes, visible to the next lookup, waited for") {
    test::temp_dir t;
    auto [in, s] = command_source(t.path());
    s.background = true;
    std::string key;
    {
        export_cache c(s, in, nullptr);
        CHECK_FALSE(
            c.lookup_or_produce(t / "stage", false, [&] { test::write(t / "stage" / "model.onnx", exported()); }));
        CHECK(c.store(t / "stage", {"model.onnx"}, json{{"modules", json::array()}})
                  .empty());  // the package hashes for itself
        key = c.outcome().key;
        // What the export does next: commit the package (a rename) and rewrite a file through a
        // new inode (--embed-hierarchy). The store still reads the strategy's bytes.
        fs::create_directories(t / "pkg");
        fs::rename(t / "stage" / "model.onnx", t / "pkg" / "model.onnx");
        write_file(t / "pkg" / "model.onnx", "rewritten");
        CHECK_FALSE(fs::exists(local_cache(s.dir).entry(key)));  // nothing stored before finish()
        c.finish();
        CHECK(c.outcome().background);
        CHECK_FALSE(c.outcome().steps.count("commit"));
    }
    local_cache local(s.dir);
    fs::create_directories(t / "stage2");
    export_cache again(s, in, nullptr);
    auto hit = again.lookup_or_produce(t / "stage2", false,
                                       [&] { FAIL("the lookup did not wait for the background store's entry"); });
    REQUIRE(hit);
    CHECK(test::read(t / "stage2" / "model.onnx") == exported());
    local.wait_for_stores();
    CHECK_FALSE(fs::exists(local.pending(key)));
    CHECK(local.verify().bad_objects == 0);
}

TEST_CASE(
    "pending markers: one store per key; a lookup waits for the entry or the local part, wait for the store's end; a "
    "dead store is not waited for") {
    test::temp_dir t;
    local_cache c(t / "cache");
    const std::string key(64, 'a');
    local_cache::store_claim claim = c.claim_store(key);
    REQUIRE(claim.fd);
    CHECK(c.claim_store(key).busy);  // a second export of the key leaves the store to the first
    CHECK(c.running_stores() == 1);
    std::atomic<bool> found{false};
    std::thread lookup([&] {
        c.wait_for_entry(key);
        found = fs::exists(c.entry(key));
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    c.put_entry(key, "{}");  // the entry is written; the store still uploads
    lookup.join();
    CHECK(found);
    // A wait with a limit gives up while the store runs; it says so and the store goes on.
    CHECK(c.wait_for_stores(std::chrono::seconds(1)) == std::make_pair(std::size_t(1), std::size_t(1)));
    auto start = std::chrono::steady_clock::now();
    std::thread store([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        c.end_store(key);
        claim.fd.reset();
    });
    CHECK(c.wait_for_stores().first == 1);
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(300));
    store.join();
    {
        local_cache::store_claim died = c.claim_store(std::string(64, 'b'));
    }  // closed without end_store: a store that died
    CHECK(c.wait_for_stores().first == 0);
    CHECK(c.running_stores() == 0);
    c.wait_for_entry(std::string(64, 'b'));  // returns: nobody holds the marker
    CHECK(c.claim_store(std::string(64, 'b')).fd);
    // The store's local part is done but there is no entry (evicted, or the store failed): the
    // lookup stops waiting although the marker stays locked for the upload.
    local_cache::store_claim uploading = c.claim_store(std::string(64, 'c'));
    REQUIRE(uploading.fd);
    std::atomic<bool> returned{false};
    std::thread waiter([&] {
        c.wait_for_entry(std::string(64, 'c'));
        returned = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    CHECK_FALSE(returned);
    local_cache::local_done(uploading.fd.get());
    waiter.join();
    CHECK(returned);
}

TEST_CASE("file_state: the same while nothing writes, another after an in-place write of the same size") {
    test::temp_dir t;
    test::write(t / "g", "exported");
    unique_fd fd = open_or_throw(t / "g", O_RDONLY);
    file_state before = file_state::of(fd.get());
    CHECK(file_state::of(open_or_throw(t / "g", O_RDONLY).get()) == before);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the clock tick of `before`
    {
        std::fstream f(t / "g", std::ios::in | std::ios::out | std::ios::binary);
        f << "EXPORTED";  // same size, in place
    }
    CHECK(file_state::of(fd.get()) != before);
    CHECK(file_state::of(-1) != file_state::of(-1));  // an unreadable state matches nothing
}

TEST_CASE("background store: a file edited in place after the export is not stored under the key") {
    test::temp_dir t;
    auto [in, s] = command_source(t.path());
    s.background = true;
    export_cache c(s, in, nullptr);
    CHECK_FALSE(c.lookup_or_produce(t / "stage", false, [&] { test::write(t / "stage" / "model.onnx", exported()); }));
    c.store(t / "stage", {"model.onnx"}, json{{"modules", json::array()}});
    fs::path kept = t / "stage" / "model.onnx";
    c.finish();  // the store starts in the background...
    {
        std::fstream f(
            kept, std::ios::in | std::ios::out | std::ios::binary);  // ...and a build step edits the package in place
        f << "EDITED!!";
    }
    local_cache local(s.dir);
    local.wait_for_stores();
    // Either the store copied before the edit (the exporter's bytes) or it saw the change and kept nothing.
    if (fs::exists(local.entry(c.outcome().key))) {
        auto m = local.find(c.outcome().key);
        REQUIRE(m);
        CHECK(m->files.at(0).sha256 == sha256_hex(exported()));
    }
    CHECK(local.verify().bad_objects == 0);
}

namespace {
struct staged_models {  // produced_onnx's fields the cache reads and rebuilds
    std::vector<std::string> models;
    std::vector<traced_module> modules;
    std::vector<std::vector<traced_module>> model_modules;
    std::string torch_version, onnx_exporter, shown;
    long long parameters = 0;
    staged_hashes hashes;
    std::vector<fs::path> inputs;
    std::string signature_source;
    reference_check reference;
    sentence_pipeline pipeline;
    json exporter_seconds;
};

/// Stores what `produce` writes into `stage` under `table` as a miss of `in`; the entry's key.
template <class Produce>
std::string store_entry(const cache_settings& s, const cache_key_inputs& in, const fs::path& stage,
                        const std::vector<std::string>& names, const json& table, Produce produce) {
    export_cache c(s, in, nullptr);
    CHECK_FALSE(c.lookup_or_produce(stage, false, produce));
    c.store(stage, names, table);
    c.finish();
    return c.outcome().key;
}

/// The staged models of the next lookup of `in`, which must hit, into an emptied `stage`.
staged_models hit_entry(const cache_settings& s, const cache_key_inputs& in, const fs::path& stage,
                        const std::string& key) {
    fs::remove_all(stage);
    fs::create_directories(stage);
    export_cache c(s, in, nullptr);
    auto hit = c.lookup_or_produce(stage, false, [&] { FAIL("a hit runs no strategy"); });
    REQUIRE(hit);
    return detail::staged_from_cache<staged_models>(*hit, in, key);
}

/// Whether the next lookup of `in`, into an emptied `stage`, misses and runs the strategy, leaving the stage clean.
bool next_lookup_misses(const cache_settings& s, const cache_key_inputs& in, const fs::path& stage) {
    fs::remove_all(stage);
    fs::create_directories(stage);
    export_cache c(s, in, nullptr);
    bool produced = false;
    bool hit = c.lookup_or_produce(stage, false, [&] { produced = true; }).has_value();
    return !hit && produced && c.outcome().result == "miss" && fs::is_empty(stage);
}
}  // namespace

TEST_CASE(
    "a sentence-transformers pipeline travels with its entry; an entry whose pipeline record is malformed is a miss") {
    test::temp_dir t;
    auto [in, s] = command_source(t.path());
    staged_models produced;
    produced.models = {"model.onnx"};
    produced.modules = {{"", "SentenceTransformer", false, 0}};
    produced.pipeline = sentence_pipeline{{"Pooling", "Normalize"}, {"mean"}, 32};
    std::string key = store_entry(s, in, t / "stage", {"model.onnx"}, detail::cache_table(produced),
                                  [&] { test::write(t / "stage" / "model.onnx", exported()); });
    staged_models back = hit_entry(s, in, t / "stage", key);
    CHECK(back.pipeline.modules == produced.pipeline.modules);
    CHECK(back.pipeline.pooling == produced.pipeline.pooling);
    CHECK(back.pipeline.dimension == 32);
    cache_manifest m = *local_cache(s.dir).find(key);
    m.table["sentence_transformers"] = {{"modules", "Pooling"}};
    local_cache(s.dir).put_entry(key, manifest_text(m));
    CHECK(next_lookup_misses(s, in, t / "stage"));
    m.table["sentence_transformers"] = produced.pipeline.to_json();
    m.table["signature"] = "x";  // read as an object when the hit is rebuilt
    local_cache(s.dir).put_entry(key, manifest_text(m));
    CHECK(next_lookup_misses(s, in, t / "stage"));
}

TEST_CASE(
    "several ONNX files are one entry with a module table per file; a table naming a file the entry lacks is a miss") {
    test::temp_dir t;
    auto [in, s] = command_source(t.path());
    staged_models produced;
    produced.models = {"encoder_model.onnx", "decoder_model.onnx"};
    produced.model_modules = {{{"", "T5", false, 0}, {"encoder", "T5Stack", true, 1}},
                              {{"", "T5", false, std::nullopt}}};
    produced.modules = produced.model_modules.front();
    produced.torch_version = "2.x";
    produced.parameters = 42;
    json table = detail::cache_table(produced);
    REQUIRE(table.at("files").size() == 2);
    staged_models single;
    single.models = {"model.onnx"};
    single.modules = produced.modules;
    CHECK(detail::cache_table(single).contains("files") == false);  // one file: as before
    std::string key = store_entry(s, in, t / "stage", {"decoder_model.onnx", "encoder_model.onnx"}, table, [&] {
        test::write(t / "stage" / "encoder_model.onnx", exported());
        test::write(t / "stage" / "decoder_model.onnx", other_model());
    });
    staged_models back = hit_entry(s, in, t / "stage", key);
    CHECK(back.models == produced.models);
    REQUIRE(back.model_modules.size() == 2);
    CHECK(back.model_modules[0].size() == 2);
    CHECK(back.model_modules[0][1].path == "encoder");
    CHECK(back.model_modules[0][1].order == 1);
    CHECK(back.model_modules[1].size() == 1);
    CHECK(back.parameters == 42);
    CHECK(back.hashes.known("decoder_model.onnx") == hash_file(t / "stage" / "decoder_model.onnx"));
    CHECK(test::read(t / "stage" / "encoder_model.onnx") == exported());
    // The same entry with a table naming a third file: restoring it is a miss, and the stage is left clean.
    cache_manifest m = *local_cache(s.dir).find(key);
    m.table["files"].push_back({{"file", "decoder_with_past_model.onnx"}, {"modules", json::array()}});
    local_cache(s.dir).put_entry(key, manifest_text(m));
    CHECK(next_lookup_misses(s, in, t / "stage"));
}

TEST_CASE("manifests naming paths outside the stage or bad hashes are refused") {
    std::string sha(64, 'a');
    CHECK_NOTHROW(parse_manifest(R"({"format":1,"files":[{"path":"model.onnx","size":1,"sha256":")" + sha +
                                 R"("}],"table":{}})"));
    for (std::string bad : {"../x", "/etc/passwd", ".modules.json", "a/b", ""})
        CHECK_THROWS_AS(parse_manifest(R"({"format":1,"files":[{"path":")" + bad + R"(","size":1,"sha256":")" + sha +
                                       R"("}],"table":{}})"),
                        cache_error);
    CHECK_THROWS_AS(parse_manifest(R"({"format":1,"files":[{"path":"model.onnx","size":1,"sha256":"AB"}],"table":{}})"),
                    cache_error);
    CHECK_THROWS_AS(parse_manifest("not json"), cache_error);
    CHECK_THROWS_AS(parse_manifest(R"({"format":2,"files":[],"table":{}})"), cache_error);
}

TEST_CASE("sizes") {
    CHECK(parse_size("10G") == (10ull << 30));
    CHECK(parse_size("500MiB") == (500ull << 20));
    CHECK(parse_size("123") == 123u);
    CHECK_FALSE(parse_size("ten"));
    CHECK_FALSE(parse_size("5X"));
    CHECK_FALSE(parse_size("-5"));  // strtoull alone would read a huge number
    CHECK_FALSE(parse_size(" 5"));
    CHECK_FALSE(parse_size("99999999999999999999"));  // past 64 bits
    CHECK_FALSE(parse_size("16777216T"));             // 2^24 TiB: the shift would overflow
    CHECK(parse_size("16777215T") == (16777215ull << 40));
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
    // Verified when stored: a hit copies without hashing while the object's stat is unchanged.
    const fs::path obj = c.object(stored.files[0].sha256);
    auto verified = [&] {
        struct stat st {};
        REQUIRE(::lstat(obj.c_str(), &st) == 0);
        return c.verified_hash(c.probes(), stored.files[0].sha256, st);
    };
    CHECK(verified() == stored.files[0].sha256);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the clock tick of the store's stat
    {
        std::fstream f(
            obj, std::ios::in | std::ios::out | std::ios::binary);  // in place: same inode, same size, other bytes
        f << "onnx bytez";
    }
    CHECK_FALSE(verified());  // the write moved its ctime: read and hash it again
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

TEST_CASE("credentials in a remote cache URL are never shown, in any form") {
    CHECK(redacted_url("https://user:secret@cache.example/p") == "https://***@cache.example/p");
    CHECK(redacted_url("https://cache.example:8080/p") == "https://cache.example:8080/p");
    CHECK(redacted_url("user:secret@127.0.0.1:9/prefix") ==
          "***@127.0.0.1:9/prefix");  // no scheme: libcurl reads it as http
    CHECK(redacted_url("http://user:p@ss@host/prefix") ==
          "http://***@host/prefix");  // an unencoded '@' in the password
    CHECK(redacted_url("http://user:pa/ss@host/prefix") == "http://***@host/prefix");  // an unencoded '/' too
    CHECK(redacted_url("http://host/a@b") == "http://***@b");  // a path's '@' is over-redacted: harmless
    // A transfer's error names the URL redacted, and with credentials none of libcurl's own text (it may quote the host
    // part).
    remote_settings s;
    s.url = "user:s3cr3t@pw@127.0.0.1:1/prefix";
    s.timeout_s = 2;
    try {
        remote_cache(s).get_entry(std::string(64, 'a'));
        FAIL("no server listens there");
    } catch (const cache_error& e) {
        CHECK(std::string(e.what()).find("s3cr3t") == std::string::npos);
        CHECK(std::string(e.what()).find("pw@") == std::string::npos);
        CHECK(std::string(e.what()).find("***@") != std::string::npos);
    }
}

namespace {
/// A directory outside the cache, with one file, and its state: what a link in the cache must never change.
struct outside_dir {
    fs::path dir;
    explicit outside_dir(const fs::path& d) : dir(d) {
        fs::create_directories(dir);
        test::write(dir / "victim", exported());
        fs::last_write_time(dir / "victim", fs::file_time_type::clock::now() - std::chrono::hours(48));
    }
    std::vector<std::string> listing() const {
        std::vector<std::string> out;
        for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
        std::sort(out.begin(), out.end());
        return out;
    }
    bool untouched() const {
        return listing() == std::vector<std::string>{"victim"} && test::read(dir / "victim") == exported() &&
               fs::file_time_type::clock::now() - fs::last_write_time(dir / "victim") > std::chrono::hours(47);
    }
};

/// One export through the cache (miss and store, or hit); returns whether the strategy ran. Never throws.
bool export_once(const cache_settings& s, const cache_key_inputs& in, const fs::path& stage,
                 std::vector<std::string>& notes) {
    fs::remove_all(stage);
    fs::create_directories(stage);
    bool produced = false;
    export_cache c(s, in, [&](const std::string& n) { notes.push_back(n); });
    if (!c.lookup_or_produce(stage, false, [&] {
            produced = true;
            test::write(stage / "model.onnx", exported());
        }))
        c.store(stage, {"model.onnx"}, json{{"modules", json::array()}});
    c.finish();
    return produced;
}
}  // namespace

namespace {
/// A command_source exported once through the cache (a miss that stored its entry), with its key.
struct stored_source {
    cache_key_inputs in;
    cache_settings s;
    local_cache local;
    std::string key;
    std::vector<std::string> notes;
    explicit stored_source(const fs::path& t) : stored_source(t, command_source(t)) {}
    stored_source(const fs::path& t, const command_source& c) : in(c.in), s(c.s), local(c.s.dir) {
        REQUIRE(export_once(s, in, t / "stage", notes));
        key = make_cache_key(in, local.probes().path).key();
    }
};
}  // namespace

TEST_CASE(
    "a link where the cache keeps something is refused: a miss with a note, nothing outside written, deleted or "
    "touched") {
    for (const char* sub : {"cas", "ac", "probes", "pending"}) {
        CAPTURE(sub);
        test::temp_dir t;
        auto [in, s] = command_source(t.path());
        for (bool background : {false, true}) {
            s.background = background;
            outside_dir outside(t / "outside");
            fs::create_directories(s.dir);
            fs::create_directory_symlink(outside.dir, s.dir / sub);
            std::vector<std::string> notes;
            CHECK(export_once(s, in, t / "stage", notes));
            CHECK(export_once(s, in, t / "stage", notes) ==
                  (std::string(sub) != "pending"));  // only pending/ is not needed for a hit
            local_cache local(s.dir);
            local.wait_for_stores();
            if (std::string(sub) != "pending") {  // said by the export, or by its background store in store.log
                std::string said;
                for (const auto& n : notes) said += n + "\n";
                if (fs::is_regular_file(s.dir / "store.log")) said += test::read(s.dir / "store.log");
                CHECK(said.find((s.dir / sub).string() + " is a symbolic link") != std::string::npos);
            }
            // The maintenance commands refuse it too (or, stats, count nothing of it); clear removes the link itself.
            for (auto op : {+[](const local_cache& c) { c.prune(0); }, +[](const local_cache& c) { c.verify(); },
                            +[](const local_cache& c) { c.stats(); }})
                try {
                    op(local);
                } catch (const cache_error&) {}
            CHECK(outside.untouched());
            local.clear();
            CHECK(outside.untouched());
            CHECK(!fs::is_symlink(s.dir / sub));
            fs::remove_all(s.dir);
            fs::remove_all(outside.dir);
        }
    }
}

TEST_CASE("linked, hard-linked or special objects and entries are misses; their targets' mtimes are not touched") {
    test::temp_dir t;
    stored_source src(t.path());
    auto& [in, s, local, key, notes] = src;
    const cache_manifest m = *local.find(key);
    const fs::path obj = local.object(m.files.at(0).sha256);
    outside_dir outside(t / "outside");
    auto replace = [&](const fs::path& p, auto&& make) {
        fs::remove(p);
        make(p);
    };
    // An object that is a link to a file with the right bytes, a hard link, a FIFO.
    for (int form = 0; form < 3; ++form) {
        CAPTURE(form);
        replace(obj, [&](const fs::path& p) {
            if (form == 0) fs::create_symlink(outside.dir / "victim", p);
            if (form == 1) fs::create_hard_link(outside.dir / "victim", p);
            if (form == 2) REQUIRE(::mkfifo(p.c_str(), 0644) == 0);
        });
        notes.clear();
        CHECK(export_once(s, in, t / "stage", notes));  // a miss: the strategy ran (and stored the object again)
        CHECK(fs::file_time_type::clock::now() - fs::last_write_time(outside.dir / "victim") > std::chrono::hours(47));
        CHECK(test::read(outside.dir / "victim") == exported());
        CHECK(fs::is_regular_file(fs::symlink_status(obj)));
    }
    // An entry that is a link or a FIFO.
    for (int form = 0; form < 2; ++form) {
        replace(local.entry(key), [&](const fs::path& p) {
            if (form == 0)
                fs::create_symlink(outside.dir / "victim", p);
            else
                REQUIRE(::mkfifo(p.c_str(), 0644) == 0);
        });
        CHECK(export_once(s, in, t / "stage", notes));
        CHECK(outside.untouched());
    }
}

TEST_CASE(
    "a FIFO or a device anywhere in the cache never blocks: lookups, waits and prune return at once, stats and verify "
    "refuse it") {
    test::temp_dir t;
    auto [in, s] = command_source(t.path());
    s.background = true;
    local_cache local(s.dir);
    const std::string key = make_cache_key(in, local.probes().path).key();
    for (const char* sub : {"ac", "cas", "pending"}) {
        fs::create_directories(s.dir / sub);
        REQUIRE(::mkfifo((s.dir / sub / key).c_str(), 0644) == 0);
    }
    REQUIRE(::mkfifo((s.dir / "store.log").c_str(), 0644) == 0);
    auto start = std::chrono::steady_clock::now();
    std::vector<std::string> notes;
    CHECK(export_once(s, in, t / "stage", notes));  // the FIFO at pending/<key> is not a store to wait for
    local.wait_for_stores();
    CHECK(local.running_stores() == 0);
    CHECK_THROWS_WITH_AS(local.stats(), doctest::Contains("is a FIFO"), cache_error);  // a report would count around it
    local.prune(local_cache::default_max_size);  // removes the FIFOs among entries, objects and markers
    const std::string log_refused =
        (s.dir / "store.log").string() + " is a FIFO";  // prune leaves the log to its writers
    CHECK_THROWS_WITH_AS(local.verify(), doctest::Contains(log_refused.c_str()), cache_error);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
    CHECK_FALSE(export_once(s, in, t / "stage", notes));  // the FIFOs are gone (prune), the store went through: a hit
}

TEST_CASE(
    "an entry may only hold what its strategy produces, and models that pass the checks; anything else is a miss") {
    test::temp_dir t;
    stored_source src(t.path());
    auto& [in, s, local, key, notes] = src;
    auto store_entry = [&](const std::map<std::string, std::string>& files, const json& table) {
        fs::remove_all(t / "forged");
        fs::create_directories(t / "forged");
        std::vector<std::string> names;
        for (const auto& [name, bytes] : files) {
            test::write(t / "forged" / name, bytes);
            names.push_back(name);
        }
        local.store(key, t / "forged", names, table);
    };
    const json table{{"modules", json::array()}};
    json names_config = table;
    names_config["files"] = json::array({{{"file", "config.json"}, {"modules", json::array()}}});
    for (const auto& [files, t2] : std::vector<std::pair<std::map<std::string, std::string>, json>>{
             {{{"model.onnx", exported()}, {"evil.sh", "#!/bin/sh\n"}}, table},  // a file no strategy writes
             {{{"model.onnx", exported()}, {"model.onnx_data", std::string(64, 'x')}},
              table},                                                       // external data nothing references
             {{{"model.onnx", exported()}, {"config.json", "{}"}}, table},  // a package file of another role
             {{{"config.json", exported()}}, names_config},                 // a table naming a non-model
             {{{"model.onnx", "not an ONNX model"}}, table}}) {             // a model failing check_onnx
        store_entry(files, t2);
        notes.clear();
        CHECK(export_once(s, in, t / "stage", notes));  // a miss, never a failed export
        CHECK(fs::exists(t / "stage" / "model.onnx"));
        CHECK_FALSE(fs::exists(t / "stage" / "evil.sh"));
        CHECK_FALSE(fs::exists(t / "stage" / "model.onnx_data"));
        CHECK_FALSE(fs::exists(t / "stage" / "config.json"));
        CHECK_FALSE(notes.empty());
    }
    // The miss stored the real entry again: the next export is a hit.
    CHECK_FALSE(export_once(s, in, t / "stage", notes));
}

TEST_CASE("temporary files of dead writers and markers of dead stores go at the next prune; a live writer's stay") {
    test::temp_dir t;
    local_cache c(t / "cache");
    pid_t dead = ::fork();
    if (dead == 0) ::_exit(0);
    ::waitpid(dead, nullptr, 0);
    const std::string ns = detail::pid_namespace();
    const std::string dead_tmp = ".tmp-" + ns + "-" + std::to_string(dead) + "-0-0", live_tmp = local_cache::temp_in();
    CHECK(detail::temp_owner_gone(dead_tmp));
    CHECK_FALSE(detail::temp_owner_gone(live_tmp));
    CHECK_FALSE(detail::temp_owner_gone(".tmp-1-2-3"));  // the old form: its owner is unknown (the hour rule)
    for (const char* sub : {"cas", "ac", "probes"}) {
        fs::create_directories(t / "cache" / sub);
        test::write(t / "cache" / sub / dead_tmp, "partial");
        test::write(t / "cache" / sub / live_tmp, "partial");
    }
    { local_cache::store_claim died = c.claim_store(std::string(64, 'd')); }  // a store killed: an unlocked marker
    local_cache::store_claim running = c.claim_store(std::string(64, 'r'));
    c.prune(local_cache::default_max_size);
    for (const char* sub : {"cas", "ac", "probes"}) {
        CHECK_FALSE(fs::exists(t / "cache" / sub / dead_tmp));
        CHECK(fs::exists(t / "cache" / sub / live_tmp));
    }
    CHECK_FALSE(fs::exists(c.pending(std::string(64, 'd'))));
    CHECK(fs::exists(c.pending(std::string(64, 'r'))));
}
