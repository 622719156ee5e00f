#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/package/copier.hpp"

using namespace modelexport;

namespace {
model_source local(const fs::path& dir) { return resolve_source(dir.string(), dir / "no-cache"); }
}  // namespace

TEST_CASE("text sources copy config and tokenizer files byte for byte, mode 0644") {
    test::temp_dir t;
    test::make_text_source(t / "src");
    ::chmod((t / "src" / "vocab.txt").c_str(), 0755);  // the package normalises modes whatever the source had
    fs::create_directories(t / "pkg");
    configuration_copier<> copier(local(t / "src"), t / "pkg");
    auto files = copier.copy_all();
    REQUIRE(files.size() == 4);
    CHECK(files[0].name == "config.json");
    for (const auto& f : files) {
        CAPTURE(f.name);
        CHECK(test::read(t / "pkg" / f.name) == test::read(t / "src" / f.name));
        CHECK(test::mode_of(t / "pkg" / f.name) == 0644);
        CHECK(f.sha256 == hash_file(t / "src" / f.name));
        CHECK(f.size == fs::file_size(t / "src" / f.name));
    }
    CHECK_FALSE(fs::exists(t / "pkg" / "preprocessor_config.json"));
}

TEST_CASE("tokenizer-only and processor-only sources copy just their role") {
    test::temp_dir t;
    test::write(t / "vision" / "config.json", R"({"model_type": "vit"})");
    test::write(t / "vision" / "preprocessor_config.json", R"({"size": {"height": 32, "width": 32}})");
    fs::create_directories(t / "pkg");
    configuration_copier<> copier(local(t / "vision"), t / "pkg");
    CHECK(copier.copy_tokenizer().empty());
    auto proc = copier.copy_image_processor();
    REQUIRE(proc.size() == 1);
    CHECK(proc[0].role == file_role::processor);
    CHECK(copier.copy_generation_config().empty());
}

TEST_CASE("a source without config.json is config_missing, naming the source") {
    test::temp_dir t;
    test::write(t / "src" / "tokenizer.json", "{}");
    configuration_copier<> copier(local(t / "src"), t.path());
    CHECK_THROWS_WITH_AS(copier.copy_model_config(), doctest::Contains("config.json required"), config_missing);
}

TEST_CASE("config.json must be an object with model_type") {
    test::temp_dir t;
    test::write(t / "a" / "config.json", R"({"architectures": ["X"]})");
    test::write(t / "b" / "config.json", R"([1])");
    test::write(t / "c" / "config.json", R"({"model_type": 3})");
    for (const char* d : {"a", "b", "c"}) {
        configuration_copier<> copier(local(t / d), t.path());
        CAPTURE(d);
        CHECK_THROWS_AS(copier.copy_model_config(), invalid_input);
    }
}

TEST_CASE("tokenizer_config entries that point at files must stay inside the source") {
    test::temp_dir t;
    test::make_text_source(t / "src");
    fs::create_directories(t / "pkg");
    test::write(t / "src" / "tokenizer_config.json", R"({"vocab_file": "../../etc/passwd"})");
    configuration_copier<> copier(local(t / "src"), t / "pkg");
    CHECK_THROWS_WITH_AS(copier.copy_tokenizer(), doctest::Contains("\"vocab_file\" points outside the model source"),
                         invalid_input);
    test::write(t / "src" / "tokenizer_config.json", R"({"merges_file": "/abs/merges.txt"})");
    CHECK_THROWS_AS(copier.copy_tokenizer(), invalid_input);
}

TEST_CASE("a malformed generation_config.json is refused before it reaches the package") {
    test::temp_dir t;
    test::make_text_source(t / "src");
    test::write(t / "src" / "generation_config.json", R"({"max_length": 20,})");
    fs::create_directories(t / "pkg");
    configuration_copier<> copier(local(t / "src"), t / "pkg");
    CHECK_THROWS_WITH_AS(copier.copy_generation_config(), doctest::Contains("generation_config.json: invalid JSON"),
                         invalid_input);
}

namespace {
/// A policy that records what it was asked to place, to show the copy mechanism is pluggable.
struct counting_policy {
    static inline int calls = 0;
    static written_file place(const fs::path& src, const fs::path& dst, const model_source& s) {
        ++calls;
        return default_copy_policy::place(src, dst, s);
    }
};
}  // namespace

TEST_CASE("the copy policy decides how bytes move") {
    test::temp_dir t;
    test::make_text_source(t / "src");
    fs::create_directories(t / "pkg");
    configuration_copier<counting_policy> copier(local(t / "src"), t / "pkg");
    copier.copy_all();
    CHECK(counting_policy::calls == 4);
}

TEST_CASE("copying from the Hub cache never shares the blob's inode") {
    test::temp_dir t;
    std::string commit(40, 'c');
    fs::path repo = t / "models--acme--m";
    test::write(repo / "refs" / "main", commit);
    test::write(repo / "blobs" / "cfgblob", R"({"model_type": "bert"})");
    fs::create_directories(repo / "snapshots" / commit);
    fs::create_symlink("../../blobs/cfgblob", repo / "snapshots" / commit / "config.json");
    fs::create_directories(t / "pkg");
    configuration_copier<> copier(resolve_source("acme/m", t.path()), t / "pkg");
    auto f = copier.copy_model_config();
    CHECK(f.source == fs::canonical(repo / "blobs" / "cfgblob"));
    CHECK_FALSE(fs::is_symlink(t / "pkg" / "config.json"));
    CHECK_FALSE(fs::equivalent(t / "pkg" / "config.json", repo / "blobs" / "cfgblob"));
    CHECK(fs::hard_link_count(repo / "blobs" / "cfgblob") == 1);
}

TEST_CASE("large files are copied by the kernel while another thread hashes them") {
    test::temp_dir t;
    std::string big(80u << 20, '\0');  // above the 64 MiB threshold of the parallel path
    for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
    test::write(t / "big.bin", big);
    auto w = copy_file_hashed(t / "big.bin", t / "copy.bin");
    CHECK(w.size == big.size());
    sha256 h;
    h.update(big.data(), big.size());
    CHECK(w.sha256 == h.hex());
    CHECK(test::read(t / "copy.bin") == big);
    CHECK(test::mode_of(t / "copy.bin") == 0644);
}

TEST_CASE("a copy stops at the export's deadline and on a signal, and refuses special files") {
    test::temp_dir t;
    test::write(t / "src.bin", std::string(3u << 20, 'x'));
    {
        cancel::deadline_scope d(1);
        cancel::deadline_ns = 1;  // already past
        CHECK_THROWS_WITH_AS(copy_file_hashed(t / "src.bin", t / "a.bin"), doctest::Contains("timed out"),
                             export_failed);
    }
    cancel::pending_signal = 15;
    CHECK_THROWS_AS(copy_file_hashed(t / "src.bin", t / "b.bin"), interrupted);
    try {
        copy_file_hashed(t / "src.bin", t / "b.bin");
    } catch (const interrupted& e) {
        CHECK(static_cast<int>(e.code()) == 128 + 15);
    }
    cancel::pending_signal = 0;
    CHECK(copy_file_hashed(t / "src.bin", t / "c.bin").size == (3u << 20));
    REQUIRE(::mkfifo((t / "fifo").c_str(), 0644) == 0);
    CHECK_THROWS_WITH_AS(copy_file_hashed(t / "fifo", t / "d.bin"), doctest::Contains("is a FIFO, not a regular file"),
                         invalid_input);
    CHECK_THROWS_WITH_AS(read_text_file(t / "fifo"), doctest::Contains("is a FIFO"), invalid_input);
    // never written through a link: the link is replaced, its target untouched
    test::write(t / "target.txt", "keep");
    fs::create_symlink(t / "target.txt", t / "link.txt");
    write_file(t / "link.txt", "new");
    CHECK(test::read(t / "target.txt") == "keep");
    CHECK_FALSE(fs::is_symlink(t / "link.txt"));
}
