// The KV cache of a decoder package against config.json (validate/decoder_checks.hpp), on real ONNX files.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "onnx_support.hpp"

#include "modelexport/onnx/stream.hpp"
#include "modelexport/validate/decoder_checks.hpp"

#include <vector>

using namespace modelexport;

namespace {

void add_value(onnx::ValueInfoProto* v, const std::string& name, int elem_type, const std::vector<std::string>& dims) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    for (const auto& d : dims) {
        auto* dim = tt->mutable_shape()->add_dim();
        if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0])))
            dim->set_dim_value(std::stoll(d));
        else
            dim->set_dim_param(d);
    }
}

/// A decoder graph signature as optimum-cli writes it: `layers` past/present pairs of [batch, kv, len, dim].
/// `kv` heads and `dim` head dim; `present_len` names the present length axis.
onnx::ModelProto decoder_model(int layers, int kv, int dim,
                               const std::string& present_len = "past_sequence_length + sequence_length") {
    onnx::ModelProto m = test::empty_model();
    auto* g = m.mutable_graph();
    const int f = onnx::TensorProto_DataType_FLOAT, i64 = onnx::TensorProto_DataType_INT64;
    add_value(g->add_input(), "input_ids", i64, {"batch_size", "sequence_length"});
    add_value(g->add_input(), "attention_mask", i64, {"batch_size", "past_sequence_length + sequence_length"});
    add_value(g->add_output(), "logits", f, {"batch_size", "sequence_length", "16"});
    for (int l = 0; l < layers; ++l)
        for (const char* kind : {"key", "value"}) {
            std::string s = "." + std::to_string(l) + "." + kind;
            add_value(g->add_input(), "past_key_values" + s, f,
                      {"batch_size", std::to_string(kv), "past_sequence_length", std::to_string(dim)});
            add_value(g->add_output(), "present" + s, f,
                      {"batch_size", std::to_string(kv), present_len, std::to_string(dim)});
        }
    return m;
}

/// GPT-BigCode's multi-query cache as transformers.js reads it: one past_key_values.{i}.key_value
/// [batch, past, 2 * head_dim] per layer, with `width` as its last axis.
onnx::ModelProto fused_decoder_model(int layers, int width) {
    onnx::ModelProto m = decoder_model(0, 1, 1);
    auto* g = m.mutable_graph();
    const int f = onnx::TensorProto_DataType_FLOAT;
    for (int l = 0; l < layers; ++l) {
        std::string s = "." + std::to_string(l) + ".key_value";
        add_value(g->add_input(), "past_key_values" + s, f,
                  {"batch_size", "past_sequence_length", std::to_string(width)});
        add_value(g->add_output(), "present" + s, f,
                  {"batch_size", "past_sequence_length + sequence_length", std::to_string(width)});
    }
    return m;
}

/// The signature of `m` as the validator reads it: saved to a real file and read back.
signature saved_signature(const onnx::ModelProto& m) {
    test::temp_dir t;
    save_onnx(m, t / "model.onnx");
    return graph_signature(load_onnx_light(t / "model.onnx").model.graph());
}

const nlohmann::json gpt2{{"model_type", "gpt2"}, {"n_layer", 2}, {"n_head", 4}, {"n_embd", 32}};

}  // namespace

TEST_CASE("cache geometry from GPT-2's and Llama's config keys") {
    cache_geometry g = cache_geometry_of(gpt2);
    CHECK(g.layers == 2);
    CHECK(g.kv_heads == 4);
    CHECK(g.head_dim == 8);
    cache_geometry l = cache_geometry_of(
        {{"num_hidden_layers", 3}, {"num_attention_heads", 8}, {"num_key_value_heads", 2}, {"hidden_size", 64}});
    CHECK(l.kv_heads == 2);  // grouped-query attention
    CHECK(l.head_dim == 8);
    CHECK(cache_geometry_of(nlohmann::json::object()).layers == -1);
    // Other families' own names, as their config.json saves them: MPT, XGLM, GPT-Neo.
    for (const auto& other : {nlohmann::json{{"n_layers", 3}, {"n_heads", 4}, {"d_model", 64}},
                              nlohmann::json{{"num_layers", 3}, {"attention_heads", 4}, {"d_model", 64}},
                              nlohmann::json{{"num_layers", 3}, {"num_heads", 4}, {"hidden_size", 64}}}) {
        cache_geometry o = cache_geometry_of(other);
        CHECK(o.layers == 3);
        CHECK(o.kv_heads == 4);
        CHECK(o.head_dim == 16);
    }
}

TEST_CASE("a complete cache matching config.json passes") {
    CHECK(cache_problem(saved_signature(decoder_model(2, 4, 8)), gpt2) == "");
}

TEST_CASE("each way a cache can be wrong is named") {
    CHECK(cache_problem(saved_signature(test::text_classifier()), gpt2).find("no past_key_values") == 0);
    CHECK(cache_problem(saved_signature(decoder_model(3, 4, 8)), gpt2) == "cache for 3 layers, config.json says 2");
    CHECK(cache_problem(saved_signature(decoder_model(2, 2, 8)), gpt2).find("key/value heads is 2, expected 4") !=
          std::string::npos);
    CHECK(cache_problem(saved_signature(decoder_model(2, 4, 16)), gpt2).find("head dim is 16, expected 8") !=
          std::string::npos);
    CHECK(cache_problem(saved_signature(decoder_model(2, 4, 8, "total_length")), gpt2)
              .find("length axis is 'total_length'") != std::string::npos);
    onnx::ModelProto swapped = decoder_model(2, 4, 8);
    swapped.mutable_graph()->mutable_input(2)->set_name("past_key_values.0.value");  // value before key
    swapped.mutable_graph()->mutable_input(3)->set_name("past_key_values.0.key");
    CHECK(cache_problem(saved_signature(swapped), gpt2).find("layer-major key, value order") != std::string::npos);
    onnx::ModelProto missing_present = decoder_model(2, 4, 8);
    missing_present.mutable_graph()->mutable_output()->RemoveLast();
    CHECK(cache_problem(saved_signature(missing_present), gpt2) == "4 past_key_values inputs but 3 present outputs");
}

TEST_CASE("cache inputs are recognised by the table's prefix and a dot") {
    CHECK(is_cache_input("past_key_values.0.key"));
    CHECK_FALSE(is_cache_input("past_key_values"));
    CHECK_FALSE(is_cache_input("past_key_values_extra.0.key"));
    CHECK_FALSE(is_cache_input("input_ids"));
}

TEST_CASE("generation settings: generation_config.json, else eos/bos ids in config.json") {
    test::temp_dir t;
    CHECK_FALSE(has_generation_settings(t.path(), gpt2));
    CHECK(has_generation_settings(t.path(), {{"eos_token_id", 2}}));
    test::write(t / "generation_config.json", "{}");
    CHECK(has_generation_settings(t.path(), gpt2));
}

TEST_CASE("multi_query decides the key/value heads over a stale num_key_value_heads") {
    // GPTBigCodeConfig(num_attention_heads=4) saves num_key_value_heads 12 (from the default n_head); the model reads
    // multi_query.
    nlohmann::json mha{
        {"model_type", "gpt_bigcode"}, {"n_layer", 2}, {"n_head", 4}, {"n_embd", 32}, {"multi_query", false},
        {"num_key_value_heads", 12}};
    CHECK(cache_geometry_of(mha).kv_heads == 4);
    mha["multi_query"] = true;
    CHECK(cache_geometry_of(mha).kv_heads == 1);
}

TEST_CASE("GPT-BigCode with multi_query needs the fused key_value cache, without it the split one") {
    nlohmann::json bigcode{
        {"model_type", "gpt_bigcode"}, {"n_layer", 2}, {"n_head", 4}, {"n_embd", 32}, {"multi_query", true}};
    CHECK(takes_fused_cache(bigcode));
    CHECK(cache_problem(saved_signature(fused_decoder_model(2, 16)), bigcode) == "");
    CHECK(cache_problem(saved_signature(fused_decoder_model(2, 8)), bigcode)
              .find("last axis (key and value, 2 x head dim) is 8, expected 16") != std::string::npos);
    CHECK(cache_problem(saved_signature(fused_decoder_model(3, 16)), bigcode) ==
          "cache for 3 layers, config.json says 2");
    // The split cache Optimum writes today is what transformers.js cannot read for a multi_query config.
    CHECK(cache_problem(saved_signature(decoder_model(2, 1, 8)), bigcode)
              .find("where past_key_values.0.key_value belongs") != std::string::npos);
    // Without multi_query in config.json transformers.js reads key/value (GPTBigCodeConfig always saves the flag).
    CHECK_FALSE(takes_fused_cache({{"model_type", "gpt_bigcode"}}));
    bigcode["multi_query"] = false;
    CHECK_FALSE(takes_fused_cache(bigcode));
    CHECK(cache_problem(saved_signature(decoder_model(2, 4, 8)), bigcode) == "");
    CHECK(cache_problem(saved_signature(fused_decoder_model(2, 16)), bigcode).find("no past_key_values") ==
          std::string::npos);
    CHECK(cache_problem(saved_signature(fused_decoder_model(2, 16)), bigcode) != "");
    CHECK_FALSE(
        takes_fused_cache({{"model_type", "falcon"}, {"multi_query", true}}));  // not in the table's cache.fused
}

TEST_CASE("a multi_query config that transformers.js cannot read is named") {
    CHECK(transformers_js_cache_problem({{"model_type", "gpt_bigcode"}, {"multi_query", true}}) == "");
    CHECK(transformers_js_cache_problem({{"model_type", "gpt_bigcode"}, {"multi_query", false}}) == "");
    CHECK(transformers_js_cache_problem(gpt2) == "");
    std::string falcon = transformers_js_cache_problem({{"model_type", "falcon"}, {"multi_query", true}});
    CHECK(falcon.find("transformers.js reads only a fused past_key_values.{i}.key_value cache") != std::string::npos);
    CHECK(falcon.find("only for gpt_bigcode, so this falcon package runs in Optimum and ONNX Runtime but not in "
                      "transformers.js") != std::string::npos);
}
