// The package's metadata, pack and unpack, and verify, compiled once (detail/linkage.hpp).
#define MODELEXPORT_UNIT_PACKAGE 1
#include "modelexport/package/metadata.hpp"
#include "modelexport/package/pack.hpp"
#include "modelexport/package/verify.hpp"
