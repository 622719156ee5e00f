// detail/sha256.hpp, detail/file_io.hpp and detail/file_copy.hpp on real files.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/detail/file_copy.hpp"
#include "modelexport/detail/file_io.hpp"
#include "modelexport/detail/sha256.hpp"

using namespace modelexport;

TEST_CASE("SHA-256 of bytes and of files (FIPS 180-2 test vector)") {
    const std::string abc_hash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    CHECK(sha256_hex("abc") == abc_hash);
    sha256 h;
    h.update("a", 1);
    h.update("bc", 2);
    CHECK(h.hex() == abc_hash);
    test::temp_dir t;
    test::write(t / "f", "abc");
    CHECK(hash_file(t / "f") == abc_hash);
}

TEST_CASE("write_file writes 0644 and reports size and hash; write_file_if_changed keeps unchanged files") {
    test::temp_dir t;
    ::umask(077);
    written_file w = write_file(t / "a.txt", "hello");
    CHECK(w.size == 5);
    CHECK(w.sha256 == sha256_hex("hello"));
    CHECK(test::mode_of(t / "a.txt") == 0644);
    auto old = fs::file_time_type::clock::now() - std::chrono::hours(1);
    fs::last_write_time(t / "a.txt", old);
    write_file_if_changed(t / "a.txt", "hello");
    CHECK(fs::last_write_time(t / "a.txt") == old);
    write_file_if_changed(t / "a.txt", "hello!");
    CHECK(test::read(t / "a.txt") == "hello!");
    CHECK_THROWS_AS(write_file(t / "no" / "dir" / "f", "x"), io_error);
    CHECK_THROWS_AS(open_or_throw(t / "missing", O_RDONLY), io_error);
}

TEST_CASE("copy_file_hashed copies byte for byte with mode 0644, small and large, and refuses non-regular files") {
    test::temp_dir t;
    std::string big(detail::parallel_copy_threshold + 12345, '\0');
    for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
    test::write(t / "big", big);
    test::write(t / "small", "small");
    ::chmod((t / "small").c_str(), 0755);
    for (const char* name : {"big", "small"}) {
        CAPTURE(name);
        written_file w = copy_file_hashed(t / name, t / (std::string(name) + ".copy"));
        CHECK(w.sha256 == hash_file(t / name));
        CHECK(w.size == fs::file_size(t / name));
        CHECK(test::mode_of(t / (std::string(name) + ".copy")) == 0644);
    }
    CHECK_THROWS_AS(copy_file_hashed(t.path(), t / "dir.copy"), error);
}
