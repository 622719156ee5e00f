// modelexport/validate/decoder_checks.hpp — the KV cache of a decoder package (docs/design.md §5.3).
//
// ORTModelForCausalLM and transformers.js find the cache by name and build the
// empty first one from the axis names, so every layer needs its past/present
// pair, in layer-major key, value order, shaped [batch_size, kv_heads, <length>,
// head_dim] (or, for the configs the table's cache.fused lists, one fused
// [batch_size, <length>, 2 * head_dim] key_value tensor per layer, as transformers.js
// reads GPT-BigCode's) with the lengths named exactly as Optimum names them, and as many
// layers, key/value heads and head dims as config.json says. The names and axes
// are the task table's `cache` (share/tasks.json, tasks.hpp kv_cache).
#pragma once

#include "modelexport/onnx/model.hpp"
#include "modelexport/tasks.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace modelexport {

/// Whether `name` is one of the cache's inputs ("past_key_values.0.key").
inline bool is_cache_input(std::string_view name, const kv_cache& cache = decoder_cache()) {
    return name.size() > cache.input_prefix.size() &&
           name.compare(0, cache.input_prefix.size(), cache.input_prefix) == 0 &&
           name[cache.input_prefix.size()] == '.';
}

/// Layers, key/value heads and head dim as config.json states them (GPT-2's, Llama's, GPT-BigCode's and Falcon's key
/// names).
struct cache_geometry {
    std::int64_t layers = -1, kv_heads = -1, head_dim = -1;
};

namespace detail {

inline std::int64_t config_int(const nlohmann::json& config, std::initializer_list<const char*> keys) {
    for (const char* k : keys) {
        auto it = config.find(k);
        if (it != config.end() && it->is_number_integer() && it->get<std::int64_t>() > 0)
            return it->get<std::int64_t>();
    }
    return -1;
}

/// The cache tensors of one direction (prefix "past_key_values" or "present"), in graph order.
inline std::vector<const tensor_info*> cache_tensors(const std::vector<tensor_info>& v, std::string_view prefix) {
    std::vector<const tensor_info*> out;
    for (const auto& t : v)
        if (t.name.size() > prefix.size() && t.name.compare(0, prefix.size(), prefix) == 0 &&
            t.name[prefix.size()] == '.')
            out.push_back(&t);
    return out;
}

inline std::string dim_text(const std::variant<std::int64_t, std::string>& d) {
    if (auto* n = std::get_if<std::int64_t>(&d)) return std::to_string(*n);
    return "'" + std::get<std::string>(d) + "'";
}

using dim = std::variant<std::int64_t, std::string>;

/// "" when `t`'s shape is `want` (a negative size: not known from config.json, not checked), else what is wrong;
/// `what` names each axis for the message.
inline std::string shape_problem(const tensor_info& t, const std::vector<dim>& want,
                                 const std::vector<const char*>& what) {
    if (t.shape.size() != want.size())
        return t.name + " has rank " + std::to_string(t.shape.size()) + ", not " + std::to_string(want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
        bool unknown = std::holds_alternative<std::int64_t>(want[i]) && std::get<std::int64_t>(want[i]) < 0;
        if (!unknown && t.shape[i] != want[i])
            return t.name + " " + what[i] + " is " + dim_text(t.shape[i]) + ", expected " + dim_text(want[i]);
    }
    return {};
}

/// "" when `t` is [<axis 0>, kv_heads, <axis 2>, head_dim] with the table's axis names, else what is wrong.
inline std::string cache_shape_problem(const tensor_info& t, const std::vector<axis_name>& axes,
                                       const cache_geometry& g) {
    return shape_problem(t, {std::string(axis_at(axes, 0)), g.kv_heads, std::string(axis_at(axes, 2)), g.head_dim},
                         {"batch axis", "key/value heads", "length axis", "head dim"});
}

/// "" when the fused `t` is [<axis 0>, <axis 1>, 2 * head_dim] with the table's axis names, else what is wrong.
inline std::string fused_shape_problem(const tensor_info& t, const std::vector<axis_name>& axes,
                                       const cache_geometry& g) {
    return shape_problem(
        t, {std::string(axis_at(axes, 0)), std::string(axis_at(axes, 1)), g.head_dim > 0 ? 2 * g.head_dim : -1},
        {"batch axis", "length axis", "last axis (key and value, 2 x head dim)"});
}

}  // namespace detail

inline cache_geometry cache_geometry_of(const nlohmann::json& config) {
    cache_geometry g;
    // The key names of htp_decoder.cache_geometry: num_layers, attention_heads (XGLM), n_layers, n_heads (MPT),
    // num_heads (GPT-Neo).
    g.layers = detail::config_int(config, {"num_hidden_layers", "n_layer", "num_layers", "n_layers"});
    std::int64_t heads =
        detail::config_int(config, {"num_attention_heads", "n_head", "num_heads", "n_heads", "attention_heads"});
    // A boolean multi_query decides over num_key_value_heads (as htp_decoder.cache_geometry): GPT-BigCode's attention
    // reads only the flag, and its config.json can carry a stale num_key_value_heads.
    auto mq = config.find("multi_query");
    auto nda = config.find("new_decoder_architecture");
    bool new_arch = nda != config.end() && nda->is_boolean() && nda->get<bool>();
    if (mq != config.end() && mq->is_boolean() && !new_arch)
        g.kv_heads = mq->get<bool>() ? 1 : heads;
    else
        g.kv_heads = detail::config_int(config, {"num_key_value_heads", "num_kv_heads"});
    if (g.kv_heads < 0) g.kv_heads = heads;
    g.head_dim = detail::config_int(config, {"head_dim"});
    std::int64_t hidden = detail::config_int(config, {"hidden_size", "n_embd", "d_model"});
    if (g.head_dim < 0 && hidden > 0 && heads > 0) g.head_dim = hidden / heads;
    return g;
}

/// Whether `config` keeps its cache fused, one <prefix>.{i}.key_value tensor per layer (the table's cache.fused:
/// GPT-BigCode with multi_query, whose cache transformers.js reads only in that form).
inline bool takes_fused_cache(const nlohmann::json& config, const kv_cache& cache = decoder_cache()) {
    const std::string type = model_type_of(config);
    for (const auto& rule : cache.fused.when) {
        if (type != rule.model_type) continue;
        auto it = config.find(std::string(rule.config_key));
        if (it == config.end() || it->is_null()) return rule.default_value;
        return it->is_boolean() && it->get<bool>();
    }
    return false;
}

/// "" unless transformers.js cannot read this config's cache: for a config.json whose multi_query is true it reads only
/// one fused <prefix>.{i}.key_value per layer (configs.js getKeyValueNames), which Optimum reads only for the families
/// of the table's cache.fused (GPT-BigCode). Falcon with multi_query has no form both clients read.
inline std::string transformers_js_cache_problem(const nlohmann::json& config,
                                                 const kv_cache& cache = decoder_cache()) {
    auto mq = config.find("multi_query");
    if (mq == config.end() || !mq->is_boolean() || !mq->get<bool>() || takes_fused_cache(config, cache)) return {};
    return "multi_query is true, for which transformers.js reads only a fused " + std::string(cache.input_prefix) +
           ".{i}." + std::string(cache.fused.suffix) + " cache; Optimum reads that form only for " +
           (cache.fused.when.empty() ? std::string("no model_type")
                                     : std::string(cache.fused.when.front().model_type)) +
           ", so this " + model_type_of(config) +
           " package runs in Optimum and ONNX Runtime but not in transformers.js";
}

/// "" when the signature carries a complete cache matching `config`, else the first problem found.
inline std::string cache_problem(const signature& sig, const nlohmann::json& config,
                                 const kv_cache& cache = decoder_cache()) {
    const std::string in(cache.input_prefix), out(cache.output_prefix);
    const bool fused = takes_fused_cache(config, cache);
    const std::vector<std::string> kinds =
        fused ? std::vector<std::string>{std::string(cache.fused.suffix)} : std::vector<std::string>{"key", "value"};
    const std::string form = fused ? "." + kinds[0] : ".key/.value";
    const std::string why = fused ? " (" + model_type_of(config) + " with multi_query: one fused " + kinds[0] +
                                        " tensor per layer, the form transformers.js reads)"
                                  : " (layer-major key, value order)";
    auto past = detail::cache_tensors(sig.inputs, in), present = detail::cache_tensors(sig.outputs, out);
    cache_geometry g = cache_geometry_of(config);
    if (past.empty()) return "no " + in + ".{i}" + form + " inputs: export with the cache (text-generation-with-past)";
    if (past.size() != present.size())
        return std::to_string(past.size()) + " " + in + " inputs but " + std::to_string(present.size()) + " " + out +
               " outputs";
    auto name_problem = [&](std::size_t i) -> std::string {
        std::string suffix = "." + std::to_string(i / kinds.size()) + "." + kinds[i % kinds.size()];
        if (past[i]->name != in + suffix) return "input " + past[i]->name + " where " + in + suffix + " belongs" + why;
        if (present[i]->name != out + suffix)
            return "output " + present[i]->name + " where " + out + suffix + " belongs" + why;
        return {};
    };
    if (auto p = name_problem(0); !p.empty()) return p;  // the wrong form is named before its count
    if (past.size() % kinds.size() != 0)
        return "an odd number (" + std::to_string(past.size()) + ") of " + in + " inputs";
    auto layers = static_cast<std::int64_t>(past.size() / kinds.size());
    if (g.layers > 0 && layers != g.layers)
        return "cache for " + std::to_string(layers) + " layers, config.json says " + std::to_string(g.layers);
    auto shape = fused ? detail::fused_shape_problem : detail::cache_shape_problem;
    const auto& in_axes = fused ? cache.fused.input_axes : cache.input_axes;
    const auto& out_axes = fused ? cache.fused.output_axes : cache.output_axes;
    for (std::size_t i = 0; i < past.size(); ++i) {
        if (auto p = name_problem(i); !p.empty()) return p;
        if (past[i]->elem_type != present[i]->elem_type)
            return past[i]->name + " is " + past[i]->elem_type + " but " + present[i]->name + " is " +
                   present[i]->elem_type;
        if (auto p = shape(*past[i], in_axes, g); !p.empty()) return p;
        if (auto p = shape(*present[i], out_axes, g); !p.empty()) return p;
    }
    return {};
}

/// Whether generation has its token ids: generation_config.json, else eos/bos ids in config.json.
inline bool has_generation_settings(const fs::path& dir, const nlohmann::json& config) {
    if (fs::is_regular_file(dir / "generation_config.json")) return true;
    return config.contains("eos_token_id") || config.contains("bos_token_id");
}

}  // namespace modelexport
