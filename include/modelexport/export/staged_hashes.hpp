// modelexport/export/staged_hashes.hpp — the SHA-256s of staged files already computed, by staged name.
//
// A large model is read as few times as possible: a strategy's copy, the cache's store and an
// --embed-hierarchy rewrite each hash the bytes they write, and the package takes that hash
// instead of reading the file again (docs/design.md §10, §11). The hashes travel with the
// produce step's result (produced_onnx) through to the package's file list; this type is their
// one owner, so a file renamed in the staging directory (the hub layout) keeps its hash and no
// step keeps a copy that could go stale.
#pragma once

#include "modelexport/detail/file_io.hpp"

#include <map>
#include <optional>
#include <string>
#include <utility>

namespace modelexport {

class staged_hashes {
public:
    /// The staged file `name` now holds bytes with this hash (a later write of it wins).
    void remember(const std::string& name, std::string sha256) { known_[name] = std::move(sha256); }
    void remember(const std::map<std::string, std::string>& hashes) {
        for (const auto& [name, sha] : hashes) remember(name, sha);
    }

    /// Renames staged file `from` to `to` inside `stage`: the bytes, and so the hash, stay.
    void rename(const fs::path& stage, const std::string& from, const std::string& to) {
        fs::rename(stage / from, stage / to);
        auto k = known_.find(from);
        if (k == known_.end()) return;
        known_[to] = std::move(k->second);
        known_.erase(k);
    }

    /// The hash of staged file `name`: the one known, else read from `stage`.
    std::string of(const fs::path& stage, const std::string& name) const {
        auto k = known_.find(name);
        return k != known_.end() ? k->second : hash_file(stage / name);
    }

    /// The hash known for `name` without reading it, if any.
    std::optional<std::string> known(const std::string& name) const {
        auto k = known_.find(name);
        return k != known_.end() ? std::optional(k->second) : std::nullopt;
    }

private:
    std::map<std::string, std::string> known_;
};

}  // namespace modelexport
