#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "test_support.hpp"

#include "modelexport/export/depfile.hpp"
#include "modelexport/package/writer.hpp"

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
    for (const auto& e : fs::directory_iterator(t.path()))
        CHECK(e.path().filename().string().find("staging") == std::string::npos);
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
    } catch (const std::runtime_error&) {}
    CHECK(test::read(t / "pkg" / "config.json") == "old");
    int entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(t.path())) ++entries;
    CHECK(entries == 1);  // pkg: the staging directory and the lock file are gone
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

TEST_CASE("unchanged files but the metadata keep their inode, so ninja's restat sees no change") {
    test::temp_dir t;
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "same");
        test::write(w.staging() / "vocab.txt", "v1");
        test::write(w.staging() / "export_metadata.json", "{}");
        w.commit();
    }
    auto inode = [](const fs::path& p) {
        struct stat st {};
        ::stat(p.c_str(), &st);
        return st.st_ino;
    };
    auto config_inode = inode(t / "pkg" / "config.json"), vocab_inode = inode(t / "pkg" / "vocab.txt");
    auto metadata_inode = inode(t / "pkg" / "export_metadata.json");
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "same");
        test::write(w.staging() / "vocab.txt", "v2");
        test::write(w.staging() / "export_metadata.json", "{}");
        w.commit();
    }
    CHECK(inode(t / "pkg" / "config.json") == config_inode);
    CHECK(inode(t / "pkg" / "vocab.txt") != vocab_inode);
    // The metadata is new after every export, same bytes or not: the build's mark that one ran.
    CHECK(inode(t / "pkg" / "export_metadata.json") != metadata_inode);
    CHECK(test::read(t / "pkg" / "vocab.txt") == "v2");
}

TEST_CASE("an output directory that is a file, or holds foreign files, is refused") {
    test::temp_dir t;
    test::write(t / "file", "x");
    CHECK_THROWS_WITH_AS(package_writer(t / "file"), doctest::Contains("exists and is not a directory"), io_error);
    test::write(t / "home" / "notes.txt", "precious");
    CHECK_THROWS_WITH_AS(package_writer(t / "home"),
                         doctest::Contains("is not a modelexport package (it holds 'notes.txt')"), io_error);
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

TEST_CASE("the lock file is removed when the export ends, and a lock path that is not a regular file is refused") {
    test::temp_dir t;
    {
        package_writer w(t / "pkg");
        CHECK(fs::exists(t / ".pkg.lock"));
        w.commit();
    }
    CHECK_FALSE(fs::exists(fs::symlink_status(t / ".pkg.lock")));
    fs::create_symlink(t / "elsewhere" / "victim", t / ".pkg.lock");  // dangling
    CHECK_THROWS_WITH_AS(package_writer(t / "pkg"), doctest::Contains("is a symbolic link"), io_error);
    CHECK_FALSE(fs::exists(t / "elsewhere"));  // nothing created through the link
    fs::remove(t / ".pkg.lock");
    REQUIRE(::mkfifo((t / ".pkg.lock").c_str(), 0644) == 0);
    CHECK_THROWS_WITH_AS(package_writer(t / "pkg"), doctest::Contains("is a FIFO, not a regular file"), io_error);
}

TEST_CASE("only regular files with one link are committed; links of a previous package are not kept") {
    test::temp_dir t;
    test::write(t / "outside.txt", "secret");
    {
        package_writer w(t / "pkg");
        fs::create_symlink(t / "outside.txt", w.staging() / "vocab.txt");
        CHECK_THROWS_WITH_AS(w.commit(), doctest::Contains("is a symbolic link"), io_error);
    }
    {
        package_writer w(t / "pkg");
        fs::create_hard_link(t / "outside.txt", w.staging() / "vocab.txt");
        CHECK_THROWS_WITH_AS(w.commit(), doctest::Contains("has 2 links"), io_error);
    }
    CHECK_FALSE(fs::exists(t / "pkg"));
    // A previous package someone left a hard link in: the new package gets its own inode.
    fs::create_directories(t / "pkg");
    fs::create_hard_link(t / "outside.txt", t / "pkg" / "vocab.txt");
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "vocab.txt", "secret");
        w.commit();
    }
    struct stat st {};
    ::lstat((t / "pkg" / "vocab.txt").c_str(), &st);
    CHECK(st.st_nlink == 1);
    CHECK(test::read(t / "outside.txt") == "secret");
}

TEST_CASE("without RENAME_EXCHANGE (EINVAL) the swap falls back to two renames") {
    test::temp_dir t;
    auto saved = detail::rename_exchange;
    detail::rename_exchange = [](const char*, const char*) {
        errno = EINVAL;
        return -1;
    };
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "old");
        w.commit();
    }
    {
        package_writer w(t / "pkg");
        test::write(w.staging() / "config.json", "new");
        w.commit();
    }
    detail::rename_exchange = saved;
    CHECK(test::read(t / "pkg" / "config.json") == "new");
    int entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(t.path())) ++entries;
    CHECK(entries == 1);  // no old package, staging directory or lock left
}

TEST_CASE("names near 255 bytes get hashed lock and staging names") {
    test::temp_dir t;
    std::string name(250, 'n');
    {
        package_writer w(t / name);
        CHECK(w.staging().filename().string().size() < 200);
        test::write(w.staging() / "config.json", "{}");
        w.commit();
    }
    CHECK(test::read(t / name / "config.json") == "{}");
    CHECK_THROWS_WITH_AS(package_writer(t / std::string(256, 'n')), doctest::Contains("longer than 255 bytes"),
                         usage_error);
}

TEST_CASE("claims: the target, what is inside it and its staging names belong to the export") {
    test::temp_dir t;
    fs::path base = fs::canonical(t.path());
    CHECK(package_writer::claims(base / "pkg", base / "pkg"));
    CHECK(package_writer::claims(base / "pkg", base / "pkg" / "src"));
    CHECK(package_writer::claims(base / "pkg", base / ".pkg.staging-12" / "src"));
    CHECK_FALSE(package_writer::claims(base / "pkg", base / "pkg2"));
    CHECK_FALSE(package_writer::claims(base / "pkg", base));
    CHECK_FALSE(package_writer::claims(base / "pkg" / "sub", base / "pkg"));
}

TEST_CASE("depfile names: every character ninja needs escaped, the rest refused") {
    CHECK(depfile_escape("a:b") == "a\\:b");
    CHECK(depfile_escape("a\\ b") == "a\\\\\\ b");  // a\ b -> 2k+1 backslashes before the space
    CHECK(depfile_escape("a\\b") == "a\\b");
    CHECK(depfile_escape("a\\\\") == "a\\\\");
    CHECK_THROWS_WITH_AS(depfile_escape("a\nb"), doctest::Contains("newline"), usage_error);
    CHECK_THROWS_WITH_AS(depfile_escape("a&b"), doctest::Contains("'&'"), usage_error);
    CHECK_THROWS_AS(depfile_escape("a:"), usage_error);
    CHECK_THROWS_AS(depfile_escape("a\\"), usage_error);
}
