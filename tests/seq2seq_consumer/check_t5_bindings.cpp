// Built against the headers modelexport generated for a T5 package: a namespace per ONNX file; the
// files' sizes and hashes are in the second header, so a weight edit recompiles only what reads them.
#include "t5_model.hpp"
#include "t5_model_files.hpp"

#include <cstdio>
#include <iterator>

static_assert(t5::task == "text2text-generation-with-past");
static_assert(std::size(t5::models) == 4);
static_assert(t5::encoder_model::file == "encoder_model.onnx" && t5::encoder_model::inputs[0].name == "input_ids");
static_assert(t5::encoder_model::outputs[0].name == "last_hidden_state");
// The merged decoder chooses its branch with a last boolean input.
static_assert(t5::decoder_model_merged::inputs[std::size(t5::decoder_model_merged::inputs) - 1].name ==
              "use_cache_branch");
static_assert(t5::decoder_model_merged::inputs[std::size(t5::decoder_model_merged::inputs) - 1].type == "bool");
static_assert(t5::decoder_model::outputs[0].name == "logits" &&
              t5::decoder_with_past_model::outputs[0].name == "logits");

int main() {
    for (const auto& f : t5::files)
        std::printf("%.*s %.*s\n", int(f.name.size()), f.name.data(), int(f.sha256.size()), f.sha256.data());
    return 0;
}
