// The task table's data, compiled once (detail/linkage.hpp).
#define MODELEXPORT_UNIT_TASKS 1
#include "modelexport/tasks.hpp"
