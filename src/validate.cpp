// The package checks and the runtime check, compiled once (detail/linkage.hpp).
#define MODELEXPORT_UNIT_VALIDATE 1
#include "modelexport/validate/runtime.hpp"
#include "modelexport/validator.hpp"
