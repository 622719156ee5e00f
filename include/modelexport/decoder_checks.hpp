// modelexport/decoder_checks.hpp — the KV cache of a decoder package (docs/design.md §5.3, SPEC §5 "Decoders").
//
// ORTModelForCausalLM and transformers.js find the cache by name and build the
// empty first one from the axis names, so every layer needs its past/present
// pair, in layer-major key, value order, shaped [batch_size, kv_heads, <length>,
// head_dim] with the lengths named exactly as Optimum names them, and as many
// layers, key/value heads and head dims as config.json says. The names and axes
// are the task table's `cache` (share/tasks.json, tasks.hpp kv_cache).
#pragma once

#include "modelexport/onnx_model.hpp"
#include "modelexport/tasks.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace modelexport {

/// Whether `name` is one of the cache's inputs ("past_key_values.0.key").
inline bool is_cache_input(std::string_view name, const kv_cache& cache = decoder_cache()) {
    return name.size() > cache.input_prefix.size() && name.compare(0, cache.input_prefix.size(), cache.input_prefix) == 0 &&
           name[cache.input_prefix.size()] == '.';
}

/// Layers, key/value heads and head dim as config.json states them (GPT-2's and Llama's key names).
struct cache_geometry {
    std::int64_t layers = -1, kv_heads = -1, head_dim = -1;
};

namespace detail {

inline std::int64_t config_int(const nlohmann::json& config, std::initializer_list<const char*> keys) {
    for (const char* k : keys) {
        auto it = config.find(k);
        if (it != config.end() && it->is_number_integer() && it->get<std::int64_t>() > 0) return it->get<std::int64_t>();
    }
    return -1;
}

/// The cache tensors of one direction (prefix "past_key_values" or "present"), in graph order.
inline std::vector<const tensor_info*> cache_tensors(const std::vector<tensor_info>& v, std::string_view prefix) {
    std::vector<const tensor_info*> out;
    for (const auto& t : v)
        if (t.name.size() > prefix.size() && t.name.compare(0, prefix.size(), prefix) == 0 && t.name[prefix.size()] == '.')
            out.push_back(&t);
    return out;
}

inline std::string dim_text(const std::variant<std::int64_t, std::string>& d) {
    if (auto* n = std::get_if<std::int64_t>(&d)) return std::to_string(*n);
    return "'" + std::get<std::string>(d) + "'";
}

/// "" when `t` is [<axis 0>, kv_heads, <axis 2>, head_dim] with the table's axis names, else what is wrong.
inline std::string cache_shape_problem(const tensor_info& t, const std::vector<axis_name>& axes, const cache_geometry& g) {
    if (t.shape.size() != 4) return t.name + " has rank " + std::to_string(t.shape.size()) + ", not 4";
    std::vector<std::variant<std::int64_t, std::string>> want{std::string(axis_at(axes, 0)), g.kv_heads, std::string(axis_at(axes, 2)),
                                                              g.head_dim};
    const char* what[] = {"batch axis", "key/value heads", "length axis", "head dim"};
    for (std::size_t i = 0; i < 4; ++i) {
        bool unknown = std::holds_alternative<std::int64_t>(want[i]) && std::get<std::int64_t>(want[i]) < 0;
        if (!unknown && t.shape[i] != want[i])
            return t.name + " " + what[i] + " is " + dim_text(t.shape[i]) + ", expected " + dim_text(want[i]);
    }
    return {};
}

}  // namespace detail

inline cache_geometry cache_geometry_of(const nlohmann::json& config) {
    cache_geometry g;
    g.layers = detail::config_int(config, {"num_hidden_layers", "n_layer", "num_layers"});
    std::int64_t heads = detail::config_int(config, {"num_attention_heads", "n_head"});
    g.kv_heads = detail::config_int(config, {"num_key_value_heads"});
    if (g.kv_heads < 0) g.kv_heads = heads;
    g.head_dim = detail::config_int(config, {"head_dim"});
    std::int64_t hidden = detail::config_int(config, {"hidden_size", "n_embd", "d_model"});
    if (g.head_dim < 0 && hidden > 0 && heads > 0) g.head_dim = hidden / heads;
    return g;
}

/// "" when the signature carries a complete cache matching `config`, else the first problem found.
inline std::string cache_problem(const signature& sig, const nlohmann::json& config, const kv_cache& cache = decoder_cache()) {
    const std::string in(cache.input_prefix), out(cache.output_prefix);
    auto past = detail::cache_tensors(sig.inputs, in), present = detail::cache_tensors(sig.outputs, out);
    cache_geometry g = cache_geometry_of(config);
    if (past.empty()) return "no " + in + ".{i}.key/.value inputs: export with the cache (text-generation-with-past)";
    if (past.size() != present.size())
        return std::to_string(past.size()) + " " + in + " inputs but " + std::to_string(present.size()) + " " + out + " outputs";
    if (past.size() % 2 != 0) return "an odd number (" + std::to_string(past.size()) + ") of " + in + " inputs";
    auto layers = static_cast<std::int64_t>(past.size() / 2);
    if (g.layers > 0 && layers != g.layers)
        return "cache for " + std::to_string(layers) + " layers, config.json says " + std::to_string(g.layers);
    for (std::size_t i = 0; i < past.size(); ++i) {
        std::string suffix = "." + std::to_string(i / 2) + (i % 2 == 0 ? ".key" : ".value");
        if (past[i]->name != in + suffix)
            return "input " + past[i]->name + " where " + in + suffix + " belongs (layer-major key, value order)";
        if (present[i]->name != out + suffix)
            return "output " + present[i]->name + " where " + out + suffix + " belongs (layer-major key, value order)";
        if (past[i]->elem_type != present[i]->elem_type)
            return past[i]->name + " is " + past[i]->elem_type + " but " + present[i]->name + " is " + present[i]->elem_type;
        if (auto p = detail::cache_shape_problem(*past[i], cache.input_axes, g); !p.empty()) return p;
        if (auto p = detail::cache_shape_problem(*present[i], cache.output_axes, g); !p.empty()) return p;
    }
    return {};
}

/// Whether generation has its token ids: generation_config.json, else eos/bos ids in config.json.
inline bool has_generation_settings(const fs::path& dir, const nlohmann::json& config) {
    if (fs::is_regular_file(dir / "generation_config.json")) return true;
    return config.contains("eos_token_id") || config.contains("bos_token_id");
}

}  // namespace modelexport
