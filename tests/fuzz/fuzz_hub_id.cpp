// libFuzzer target: Hub id parsing and the cache paths built from an accepted
// id (export/source.hpp), plus the escaping of text quoted in error lines (error.hpp).
//
// Invariants: an accepted id has no "..", does not start with '/', has no
// control characters; its cache folder is one path component; the refs and
// snapshot paths stay inside the repository's cache folder. printable() output
// is one line of well-formed UTF-8 and escaping is idempotent.
#include "modelexport/error.hpp"
#include "modelexport/export/source.hpp"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

namespace me = modelexport;
namespace fs = std::filesystem;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

bool well_formed_utf8(const std::string& s) {
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        std::uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
        for (std::size_t k = 1; k < n; ++k) {
            auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (b & 0x3f);
        }
        static const std::uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return false;  // no control characters at all
        i += n;
    }
    return true;
}

/// A tiny offline cache with one model, so resolve_source gets past "not found".
const fs::path& fake_cache() {
    static const fs::path root = [] {
        fs::path r = fs::temp_directory_path() / ("modelexport-fuzz-hub-" + std::to_string(::getpid()));
        fs::path repo = r / "models--acme--tiny-bert";
        std::string commit(40, 'a');
        fs::create_directories(repo / "refs" / "refs" / "pr");
        fs::create_directories(repo / "snapshots" / commit);
        std::ofstream(repo / "refs" / "main") << commit << "\n";
        std::ofstream(repo / "refs" / "refs" / "pr" / "1") << commit;
        std::ofstream(repo / "refs" / "bad") << "../../../etc";
        std::ofstream(repo / "snapshots" / commit / "config.json") << "{\"model_type\": \"bert\"}";
        // An empty working directory: an accepted id must not name a local directory by accident.
        fs::create_directories(r / "cwd");
        if (::chdir((r / "cwd").c_str()) != 0) std::abort();
        std::atexit([] {
            std::error_code ec;
            fs::remove_all(fs::temp_directory_path() / ("modelexport-fuzz-hub-" + std::to_string(::getpid())), ec);
        });
        return r;
    }();
    return root;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);

    std::string shown = me::printable(text);
    require(well_formed_utf8(shown));
    require(me::printable(shown) == shown);

    me::hub_id id;
    try {
        id = me::parse_hub_id(text);
    } catch (const me::error& e) {
        require(e.code() == me::exit_code::invalid_input);
        require(std::string(e.what()).find("model id '") == 0);
        return 0;
    }
    require(text.find("..") == std::string::npos);
    require(!text.empty() && text.front() != '/' && text.size() <= 512);
    for (unsigned char c : text) require(c >= 0x20 && c != 0x7f);
    require(!id.name.empty() && id.name.find('/') == std::string::npos && id.org.find('/') == std::string::npos);
    require(!id.revision.empty());
    std::string folder = id.cache_folder();
    require(folder.rfind("models--", 0) == 0 && folder.find('/') == std::string::npos && folder != "." &&
            folder != "..");
    require(id.repo() == (id.org.empty() ? id.name : id.org + "/" + id.name));

    // The paths resolve_in_cache builds stay inside the repository folder.
    const fs::path cache = "/cache";
    const fs::path repo = cache / folder;
    require(repo.parent_path() == cache);
    fs::path ref = (repo / "refs" / id.revision).lexically_normal();
    require(me::model_source::is_within(ref, repo / "refs") && ref != repo / "refs");
    if (me::detail::is_commit_hash(id.revision))
        require((repo / "snapshots" / id.revision).lexically_normal().parent_path() == repo / "snapshots");

    // And resolving it offline fails only with documented errors, or finds the one model.
    try {
        me::model_source src = me::resolve_source(text, fake_cache());
        require(src.from_cache() && me::model_source::is_within(src.dir, fake_cache()));
        require(me::detail::is_commit_hash(src.commit));
        auto cfg = src.file("config.json");
        require(cfg.has_value() && me::model_source::is_within(*cfg, src.boundary));
    } catch (const me::error& e) {
        auto c = e.code();
        require(c == me::exit_code::invalid_input || c == me::exit_code::model_not_found || c == me::exit_code::usage);
    }
    return 0;
}
