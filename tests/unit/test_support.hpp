// Helpers shared by the unit tests: a real temporary directory and small file utilities.
#pragma once

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace test {

namespace fs = std::filesystem;

/// A fresh directory under $TMPDIR, removed with everything in it.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (fs::temp_directory_path() / "modelexport-test-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& p) const { return path_ / p; }

private:
    fs::path path_;
};

inline void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

inline std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline unsigned mode_of(const fs::path& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 07777;
}

/// A minimal Hugging Face text model source (no weights).
inline void make_text_source(const fs::path& dir) {
    write(
        dir / "config.json",
        R"({"architectures": ["BertForSequenceClassification"], "model_type": "bert", "id2label": {"0": "NEG", "1": "POS"}})");
    write(dir / "tokenizer.json", R"({"version": "1.0", "model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}})");
    write(dir / "tokenizer_config.json", R"({"tokenizer_class": "BertTokenizer", "vocab_file": "vocab.txt"})");
    write(dir / "vocab.txt", "[UNK]\nhello\n");
}

}  // namespace test
