// The strategies that produce the ONNX files, the variants made from them and the reference check
// against the source model, compiled once (detail/linkage.hpp).
#define MODELEXPORT_UNIT_PRODUCE 1
#include "modelexport/export/reference_source.hpp"
#include "modelexport/export/strategies.hpp"
#include "modelexport/export/variants.hpp"
