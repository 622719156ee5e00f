// The export cache (key, lookup, store, background store), compiled once (detail/linkage.hpp).
#define MODELEXPORT_UNIT_CACHE 1
#include "modelexport/cache/export_cache.hpp"
