// The projection of the module hierarchy onto an ONNX graph, compiled once (detail/linkage.hpp).
#define MODELEXPORT_UNIT_PROJECT 1
#include "modelexport/onnx/project.hpp"
