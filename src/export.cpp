// The export pipeline, compiled once (detail/linkage.hpp).
#define MODELEXPORT_UNIT_EXPORT 1
#include "modelexport/export.hpp"
#include "modelexport/export/build_edge.hpp"
