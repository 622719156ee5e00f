// Built against the header modelexport generated in a CMake build.
#include "bert_model.hpp"

#include <iostream>

static_assert(bert::task == "text-classification");
static_assert(bert::inputs[0].name == "input_ids" && bert::inputs[0].shape[1].symbol == "sequence_length");

int main() {
    for (auto label : bert::id2label) std::cout << label << "\n";
    return bert::label_count == 2 ? 0 : 1;
}
