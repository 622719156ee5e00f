// modelexport/validate/tokenizer_ids.hpp — the token ids a package can feed its model, and the
// embedding rows the model has for them (docs/design.md §5.4).
//
// An id at or past the embedding's last row is not an error every runtime reports:
// ONNX Runtime's Gather fails ("index out of range") only on the text that produces
// that id, so a package whose tokenizer has one piece too many passes every check that
// feeds it ordinary ids and breaks in production. Both sides are read from the files
// clients read: the ids from the tokenizer files and the token ids of config.json and
// generation_config.json, the rows from the graph's own embedding table.
#pragma once

#include "modelexport/detail/json_file.hpp"
#include "modelexport/error.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace modelexport {

/// One id a package file makes the model read: a token of a vocabulary or a special id of a config.
struct token_id {
    std::int64_t id = -1;
    std::string file;   ///< the file as read: "<package>/tokenizer.json"
    std::string token;  ///< the piece, for a vocabulary entry
    std::string key;    ///< the config key, for a special id ("eos_token_id")

    /// "token 'xyz' has id 112" or "eos_token_id is 112".
    std::string describe() const {
        return key.empty() ? "token '" + printable(token) + "' has id " + std::to_string(id)
                           : key + " is " + std::to_string(id);
    }
};

/// The ids input of a graph and the rows of the embedding table it indexes.
struct id_embedding {
    std::string input;  ///< "input_ids" or "decoder_input_ids"; empty when the graph takes no ids
    std::optional<std::int64_t>
        rows;              ///< the table's size along the Gather axis, when a Gather reads it from an initializer
    bool indexes = false;  ///< some Gather takes the ids as its indices (whatever its table)
};

namespace detail {

// tokenizer.json of a 250k-piece vocabulary (Gemma's) is over 30 MB; other JSON files keep the default limit.
inline const json_limits tokenizer_json_limits{64u << 20, 64};

/// `v` as an id; nullopt when it is not an integer. An integer past int64 (JSON allows up to
/// 2^64 - 1) is refused rather than wrapped to a negative id that would seem to fit.
inline std::optional<std::int64_t> json_id(const json& v, const std::string& file, const std::string& what) {
    if (!v.is_number_integer()) return std::nullopt;
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        throw invalid_input(file, what + " is " + v.dump() + ", past any embedding");
    return v.get<std::int64_t>();
}

/// The entry of `vocab` (a {piece: id} object) with the largest id, as read from `file`.
inline std::optional<token_id> largest_in_map(const json& vocab, const std::string& file, const std::string& what) {
    std::optional<token_id> best;
    for (const auto& [piece, id] : vocab.items()) {
        auto v = json_id(id, file, what + " entry '" + printable(piece) + "'");
        if (!v) throw invalid_input(file, what + " entry '" + printable(piece) + "' is not an integer id");
        if (!best || *v > best->id) best = token_id{*v, file, piece, ""};
    }
    return best;
}

/// The largest id of tokenizer.json's model (a {piece: id} object for WordPiece, BPE and
/// WordLevel; a list of [piece, score] for Unigram, whose ids are the positions) and of its
/// added_tokens.
inline std::vector<token_id> tokenizer_json_ids(const json& doc, const std::string& file) {
    std::vector<token_id> out;
    auto model = doc.find("model");
    if (model != doc.end() && model->is_object()) {
        auto vocab = model->find("vocab");
        if (vocab != model->end() && vocab->is_object()) {
            if (auto best = largest_in_map(*vocab, file, "model.vocab")) out.push_back(*best);
        } else if (vocab != model->end() && vocab->is_array() && !vocab->empty()) {
            const json& last = vocab->back();
            std::string piece =
                last.is_array() && !last.empty() && last[0].is_string() ? last[0].get<std::string>() : "";
            out.push_back({static_cast<std::int64_t>(vocab->size()) - 1, file, piece, ""});
        }
    }
    auto added = doc.find("added_tokens");
    if (added != doc.end() && added->is_array()) {
        std::optional<token_id> best;
        for (const auto& t : *added) {
            auto id = t.is_object() && t.contains("id") ? json_id(t["id"], file, "an added_tokens id") : std::nullopt;
            if (!id) throw invalid_input(file, "an added_tokens entry has no integer \"id\"");
            std::string piece =
                t.contains("content") && t["content"].is_string() ? t["content"].get<std::string>() : "";
            if (!best || *id > best->id) best = token_id{*id, file, piece, ""};
        }
        if (best) out.push_back(*best);
    }
    return out;
}

/// vocab.txt (BertTokenizer's): one piece per line, the id is the line's index.
inline std::optional<token_id> vocab_txt_id(const std::string& text, const std::string& file) {
    std::int64_t lines = 0;
    std::string last;
    // Python's text mode, which BertTokenizer reads it in, ends a line at \n, \r\n or \r.
    for (std::size_t start = 0; start < text.size();) {
        std::size_t end = text.find_first_of("\r\n", start);
        if (end == std::string::npos) end = text.size();
        last = text.substr(start, end - start);
        ++lines;
        start = end + (text.compare(end, 2, "\r\n") == 0 ? 2 : 1);
    }
    if (lines == 0) return std::nullopt;
    return token_id{lines - 1, file, last, ""};
}

/// The largest id of tokenizer_config.json's added_tokens_decoder ({"<id>": {"content": piece}}).
inline std::optional<token_id> added_tokens_decoder_id(const json& config, const std::string& file) {
    auto decoder = config.find("added_tokens_decoder");
    if (decoder == config.end() || !decoder->is_object()) return std::nullopt;
    std::optional<token_id> best;
    for (const auto& [key, token] : decoder->items()) {
        bool digits = !key.empty() && key.size() <= 18 &&
                      std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits) throw invalid_input(file, "added_tokens_decoder key '" + printable(key) + "' is not an id");
        std::int64_t id = std::stoll(key);
        auto content = token.is_object() ? token.find("content") : token.end();
        std::string piece =
            token.is_object() && content != token.end() && content->is_string() ? content->get<std::string>() : "";
        if (!best || id > best->id) best = token_id{id, file, piece, ""};
    }
    return best;
}

/// Appends the non-negative integer ids at `key` of a config (an int or a list of ints).
inline void append_special(const json& config, const char* key, const std::string& file, std::vector<token_id>& out) {
    auto it = config.find(key);
    if (it == config.end()) return;
    auto add = [&](const json& v) {
        if (auto id = json_id(v, file, key); id && *id >= 0) out.push_back({*id, file, "", key});
    };
    if (it->is_array())
        for (const auto& v : *it) add(v);
    else
        add(*it);
}

}  // namespace detail

/// The largest id each of the package's tokenizer files can produce. tokenizer.json when
/// present (the file transformers' fast tokenizers and transformers.js read), else the slow
/// tokenizers' vocab.txt or vocab.json; added_tokens.json and tokenizer_config.json's
/// added_tokens_decoder in both cases (transformers adds them to either). Throws
/// invalid_input for a file that cannot be read.
inline std::vector<token_id> tokenizer_ids(const fs::path& dir) {
    std::vector<token_id> out;
    auto append = [&](std::optional<token_id> t) {
        if (t) out.push_back(std::move(*t));
    };
    const fs::path tokenizer = dir / "tokenizer.json", vocab_txt = dir / "vocab.txt", vocab_json = dir / "vocab.json",
                   added = dir / "added_tokens.json", config = dir / "tokenizer_config.json";
    if (fs::is_regular_file(tokenizer)) {
        auto ids =
            detail::tokenizer_json_ids(read_json_object(tokenizer, detail::tokenizer_json_limits), tokenizer.string());
        out.insert(out.end(), ids.begin(), ids.end());
    } else if (fs::is_regular_file(vocab_txt)) {
        append(detail::vocab_txt_id(read_text_file(vocab_txt), vocab_txt.string()));
    } else if (fs::is_regular_file(vocab_json)) {
        append(detail::largest_in_map(read_json_object(vocab_json), vocab_json.string(), "the vocabulary"));
    }
    if (fs::is_regular_file(added))
        append(detail::largest_in_map(read_json_object(added), added.string(), "the added tokens"));
    if (fs::is_regular_file(config)) append(detail::added_tokens_decoder_id(read_json_object(config), config.string()));
    return out;
}

/// The token ids of a config.json or generation_config.json that a model is fed: pad, bos,
/// eos, decoder_start, forced_bos, forced_eos (each an int or a list of ints), and the ids of
/// forced_decoder_ids ([[position, id], ...], Whisper's prompt).
inline std::vector<token_id> special_ids(const json& config, const std::string& file) {
    std::vector<token_id> out;
    for (const char* key : {"pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id",
                            "forced_bos_token_id", "forced_eos_token_id"})
        detail::append_special(config, key, file, out);
    auto forced = config.find("forced_decoder_ids");
    if (forced != config.end() && forced->is_array())
        for (const auto& pair : *forced)
            if (pair.is_array() && pair.size() == 2)
                if (auto id = detail::json_id(pair[1], file, "forced_decoder_ids"); id && *id >= 0)
                    out.push_back({*id, file, "", "forced_decoder_ids"});
    return out;
}

namespace detail {

/// Collects the Gathers whose indices derive from `ids` (directly or through the ops that
/// only change an id tensor's type or shape) and whose table is an initializer of `g` or
/// of an enclosing graph (`tables`), in `g` and in its subgraphs (an If's branches read the
/// outer graph's names). Returns the smallest table's size along the Gather axis.
inline void gather_rows(const onnx::GraphProto& g, std::set<std::string>& derived,
                        std::map<std::string, std::vector<std::int64_t>> tables, id_embedding& out) {
    std::optional<std::int64_t>& rows = out.rows;
    for (const auto& t : g.initializer()) tables[t.name()] = {t.dims().begin(), t.dims().end()};
    // Ops whose first input's values pass to the output unchanged: ids cast, reshaped, or a part of them taken
    // (MusicGen's decoder embeds each codebook's row of its ids: a Gather or Slice of the ids, then the table's).
    static const std::set<std::string> passthrough{"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Slice"};
    for (const auto& n : g.node()) {
        const bool domain_ok = n.domain().empty() || n.domain() == "ai.onnx";
        const bool selects_ids =
            n.op_type() == "Gather" && n.input_size() == 2 && derived.count(n.input(0)) && !tables.count(n.input(0));
        if (domain_ok &&
            ((passthrough.count(n.op_type()) && n.input_size() > 0 && derived.count(n.input(0))) || selects_ids))
            for (const auto& o : n.output()) derived.insert(o);
        if (domain_ok && n.op_type() == "Gather" && n.input_size() == 2 && derived.count(n.input(1))) {
            out.indexes = true;
            auto table = tables.find(n.input(0));
            if (table != tables.end() && !table->second.empty()) {
                std::int64_t axis = 0, rank = static_cast<std::int64_t>(table->second.size());
                for (const auto& a : n.attribute())
                    if (a.name() == "axis") axis = a.i();
                if (axis < 0) axis += rank;
                if (axis >= 0 && axis < rank && (!rows || table->second[axis] < *rows)) rows = table->second[axis];
            }
        }
        for (const auto& a : n.attribute()) {
            if (a.has_g()) gather_rows(a.g(), derived, tables, out);
            for (const auto& sub : a.graphs()) gather_rows(sub, derived, tables, out);
        }
    }
}

}  // namespace detail

/// The ids input of `g` (input_ids, else decoder_input_ids) and the rows of the embedding
/// that reads it: a Gather whose indices are that input, possibly after Cast, Reshape,
/// Unsqueeze, Squeeze, Flatten, Slice or a Gather of some of them, and whose table is an initializer. Of several such
/// Gathers the smallest table counts, since an id must fit each.
inline id_embedding find_id_embedding(const onnx::GraphProto& g) {
    id_embedding out;
    std::set<std::string> initializers;
    for (const auto& t : g.initializer()) initializers.insert(t.name());
    for (const char* name : {"input_ids", "decoder_input_ids"})
        for (const auto& in : g.input())
            if (out.input.empty() && in.name() == name && !initializers.count(name)) out.input = name;
    if (out.input.empty()) return out;
    std::set<std::string> derived{out.input};
    detail::gather_rows(g, derived, {}, out);
    return out;
}

/// The vocabulary size config.json states, and under which key.
struct stated_vocab {
    std::int64_t size = -1;  ///< -1: none stated
    std::string key;
};

/// The vocabulary size config.json states for one ONNX file that takes ids: for the decoder
/// files of an encoder-decoder the decoder's (decoder.vocab_size of a nested config, else
/// decoder_vocab_size), for its encoder the encoder's (encoder.vocab_size), and else, or when
/// those are absent, vocab_size.
inline stated_vocab config_vocab_size(const json& config, bool decoder_file, bool encoder_file) {
    auto positive = [](const json& c, const char* key) -> std::int64_t {
        auto it = c.find(key);
        return it != c.end() && it->is_number_integer() && it->get<std::int64_t>() > 0 ? it->get<std::int64_t>() : -1;
    };
    const char* part = decoder_file ? "decoder" : encoder_file ? "encoder" : nullptr;
    if (part) {
        auto nested = config.find(part);
        if (nested != config.end() && nested->is_object())
            if (std::int64_t v = positive(*nested, "vocab_size"); v > 0) return {v, std::string(part) + ".vocab_size"};
    }
    if (decoder_file)
        if (std::int64_t v = positive(config, "decoder_vocab_size"); v > 0) return {v, "decoder_vocab_size"};
    return {positive(config, "vocab_size"), "vocab_size"};
}

}  // namespace modelexport
