// The C++ bindings and embedded-model sources generated from a package, compiled once
// (detail/linkage.hpp).
#define MODELEXPORT_UNIT_BINDINGS 1
#include "modelexport/package/bindings.hpp"
