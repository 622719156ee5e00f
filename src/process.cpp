// Starting and stopping helper programs through Boost.Process, compiled once (detail/linkage.hpp).
#define MODELEXPORT_UNIT_PROCESS 1
#include "modelexport/detail/process.hpp"
