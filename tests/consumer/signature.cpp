// Code that uses only the model's names and shapes: it includes the main headers, not the
// *_files.hpp ones, so a tokenizer or weight edit (new hashes) does not recompile it.
#include "bert_model.hpp"
#include "vit_model.hpp"

#include <iterator>

// The signature is known at compile time.
static_assert(bert::inputs[0].name == "input_ids");
static_assert(bert::outputs[0].name == "logits" && bert::outputs[0].shape[0].symbol == "batch_size");
// Images of any size and channel count (share/tasks.json: pixel_values axes as Optimum's vision configs).
static_assert(vit::inputs[0].name == "pixel_values" && vit::inputs[0].shape[1].symbol == "num_channels");
static_assert(bert::task == "text-classification" && vit::task == "image-classification");

int vit_inputs() { return static_cast<int>(std::size(vit::inputs)); }
