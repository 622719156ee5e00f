#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/package_writer.hpp"

#include <sys/wait.h>

#include <thread>

using namespace modelexport;

TEST_CASE("commit makes the staged package the target") {
    test::temp_dir t;
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "{}");
        CHECK_FALSE(fs::exists(t / "pkg"));
        w.commit();
    }
    CHECK(test::read(t / "pkg" / "config.json") == "{}");
    CHECK(test::mode_of(t / "pkg") == 0755);
    for (const auto& e : fs::directory_iterator(t.path())) CHECK(e.path().filename().string().find("staging") == std::string::npos);
}

TEST_CASE("a failure before commit leaves the previous package untouched and no staging directory") {
    test::temp_dir t;
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "old");
        w.commit();
    }
    try {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "new, half written");
        throw std::runtime_error("exporter crashed");
    } catch (const std::runtime_error&) {
    }
    CHECK(test::read(t / "pkg" / "config.json") == "old");
    int entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(t.path())) ++entries;
    CHECK(entries == 2);  // pkg and the lock file
}

TEST_CASE("a replaced package holds only the new files") {
    test::temp_dir t;
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "a");
        test::write(w.staging() / "vocab.txt", "v");
        w.commit();
    }
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "b");
        w.commit();
    }
    CHECK(test::read(t / "pkg" / "config.json") == "b");
    CHECK_FALSE(fs::exists(t / "pkg" / "vocab.txt"));
}

TEST_CASE("unchanged files keep their inode, so ninja's restat sees no change") {
    test::temp_dir t;
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "same");
        test::write(w.staging() / "vocab.txt", "v1");
        w.commit();
    }
    auto inode = [](const fs::path& p) { struct stat st {}; ::stat(p.c_str(), &st); return st.st_ino; };
    auto config_inode = inode(t / "pkg" / "config.json"), vocab_inode = inode(t / "pkg" / "vocab.txt");
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "same");
        test::write(w.staging() / "vocab.txt", "v2");
        w.commit();
    }
    CHECK(inode(t / "pkg" / "config.json") == config_inode);
    CHECK(inode(t / "pkg" / "vocab.txt") != vocab_inode);
    CHECK(test::read(t / "pkg" / "vocab.txt") == "v2");
}

TEST_CASE("an output directory that is a file, or holds foreign files, is refused") {
    test::temp_dir t;
    test::write(t / "file", "x");
    CHECK_THROWS_WITH_AS(package_writer(t / "file"), doctest::Contains("exists and is not a directory"), io_error);
    test::write(t / "home" / "notes.txt", "precious");
    CHECK_THROWS_WITH_AS(package_writer(t / "home"), doctest::Contains("is not a modelexport package (it holds 'notes.txt')"), io_error);
    CHECK(test::read(t / "home" / "notes.txt") == "precious");
}

TEST_CASE("build files named as allowed survive the swap") {
    test::temp_dir t;
    fs::create_directories(t / "pkg");
    test::write(t / "pkg" / "bert.d", "dep");
    package_writer w(t / "pkg", {"bert.d"});
    test::write(w.staging() / "config.json", "{}");
    w.commit();
    CHECK(test::read(t / "pkg" / "bert.d") == "dep");
}

TEST_CASE("a staging directory left by a killed run is removed by the next one") {
    test::temp_dir t;
    test::write(t / ".pkg.staging-99999" / "model.onnx", "partial");
    package_writer w(t / "pkg");
    CHECK_FALSE(fs::exists(t / ".pkg.staging-99999"));
}

TEST_CASE("two writers to one target are serialised by the lock") {
    // Deterministic hand-over through two pipes, no sleeps: the child takes the lock and says
    // so; the parent's writer tells the child (from its on_wait callback) that it is waiting;
    // only then does the child commit and release the lock.
    test::temp_dir t;
    int locked[2], waiting[2];
    REQUIRE(::pipe(locked) == 0);
    REQUIRE(::pipe(waiting) == 0);
    pid_t child = ::fork();
    if (child == 0) {
        char c = 0;
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "child");
        if (::write(locked[1], "l", 1) != 1 || ::read(waiting[0], &c, 1) != 1) ::_exit(1);
        w.commit();
        ::_exit(0);
    }
    char c = 0;
    REQUIRE(::read(locked[0], &c, 1) == 1);
    bool waited = false;
    {
        package_writer w(t / "pkg", {}, [&](const std::string&) {
            waited = true;
            CHECK(::write(waiting[1], "w", 1) == 1);
        });
        CHECK(test::read(t / "pkg" / "config.json") == "child");  // the child committed before we got the lock
        test::write(w.staging() / "config.json", "parent");
        w.commit();
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(waited);
    CHECK(test::read(t / "pkg" / "config.json") == "parent");
    for (int fd : {locked[0], locked[1], waiting[0], waiting[1]}) ::close(fd);
}
