// libFuzzer target: what the export cache reads from a cache entry (a local ac/<key> file or a
// remote server's answer), before it restores anything: the manifest (cache/store.hpp) and the
// names it may hold (cache/export_cache.hpp's check_entry_names, over the module table's files).
//
// A manifest is untrusted input that can only ever be a miss: parse_manifest may throw nothing
// but cache_error, and what it accepts must be plain names and SHA-256 hex that write back
// unchanged. An entry whose names pass may name only package model files.
#include "modelexport/cache/export_cache.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

namespace me = modelexport;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    me::cache_manifest m;
    try {
        m = me::parse_manifest(text);
    } catch (const me::cache_error&) {
        return 0;
    }
    require(!m.files.empty());
    for (const auto& f : m.files) {
        require(!f.path.empty() && f.path.find('/') == std::string::npos && f.path[0] != '.');
        require(f.sha256.size() == 64);
    }
    // What a store writes for it reads back the same.
    me::cache_manifest again = me::parse_manifest(me::manifest_text(m));
    require(again.files.size() == m.files.size() && again.table == m.table);

    // The entry's names: the restore turns any exception into a miss; the names that pass are model files.
    std::set<std::string> models;
    try {
        for (const auto& name : me::module_table::from_json(m.table).models) models.insert(name);
        me::detail::check_entry_names(m, models);
    } catch (const std::exception&) {
        return 0;
    }
    for (const auto& f : m.files) {
        auto role = me::role_of(f.path);
        require(role && *role == me::file_role::model);
    }
    return 0;
}
